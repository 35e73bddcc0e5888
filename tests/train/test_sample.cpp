// Sampling from trained runs: seeded determinism, greedy decoding against naive loops (a sliding window for
// a model without state; the state carried past one segment for XL and BRT), top-k/top-p, bad options.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "data/gen.h"
#include "train/sample.h"
#include "train/trainer.h"
#include "../common/runs.h"

namespace recur::train {
namespace {

using ::testing::HasSubstr;

class SampleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = "/tmp/recur-test-sample-" + std::to_string(::getpid());
    make_dirs(root_);
    test::make_word_dataset(root_, {"the cat ", "a dog ", "sees ", "likes ", "the ball.\n", "a mouse.\n"}, 20000, 7);
    for (const std::string type : {"xl", "transformer", "brt"}) {
      auto c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/" + type + ".yaml",
                            {"data.path=" + root_ + "/data", "train.steps=8", "train.log_every=8", "eval.max_tokens=64"});
      run_training(c, run(type));
    }
  }
  static void TearDownTestSuite() { remove_tree(root_); }
  static std::string run(const std::string& type) { return root_ + "/run-" + type; }
  static std::string sample(const std::string& type, const SampleOptions& o, const std::string& prompt = "the cat ") {
    std::string text;
    sample_run(run(type), prompt, o, [&](const std::string& s) { text += s; });
    return text;
  }
  static torch::Tensor tokens(const std::vector<int64_t>& ids, int64_t begin, int64_t end) {
    return torch::tensor(std::vector<int64_t>(ids.begin() + begin, ids.begin() + end), torch::kInt64).unsqueeze(0);
  }
  static int64_t argmax_last(const model::ForwardResult& out) { return out.logits[0][out.logits.size(1) - 1].argmax().item<int64_t>(); }
  // Greedy decoding recomputed from scratch at every step: the prompt (whole segments of T) with the state
  // carried, then the generated tokens in blocks of B, each whole block committing the state.
  static std::vector<int64_t> naive_carried(model::LanguageModel& m, std::vector<int64_t> ids, int64_t n, int64_t T, int64_t B) {
    torch::NoGradGuard no_grad;
    const int64_t P = static_cast<int64_t>(ids.size());
    EXPECT_EQ(P % T, 0);
    for (int64_t step = 0; step < n; ++step) {
      model::State state;
      model::ForwardResult out;
      for (int64_t s = 0; s < P; s += T) {
        out = m.forward(tokens(ids, s, s + T), state);
        state = out.state;
      }
      const int64_t end = static_cast<int64_t>(ids.size());
      for (int64_t s = P; s < end; s += B) {
        out = m.forward(tokens(ids, s, std::min(s + B, end)), state);
        state = out.state;
      }
      ids.push_back(argmax_last(out));
    }
    return std::vector<int64_t>(ids.begin() + P, ids.end());
  }
  static std::string root_;
};
std::string SampleTest::root_;

SampleOptions options(int64_t tokens, double temperature, uint64_t seed = 1, int64_t top_k = 0, double top_p = 1) {
  SampleOptions o;
  o.tokens = tokens;
  o.temperature = temperature;
  o.seed = seed;
  o.top_k = top_k;
  o.top_p = top_p;
  return o;
}

TEST_F(SampleTest, SameSeedSameTextOtherSeedsDiffer) {
  for (const std::string type : {"xl", "brt"}) {
    std::string a = sample(type, options(60, 1.0, 3)), b = sample(type, options(60, 1.0, 3));
    EXPECT_EQ(a, b) << type;
    EXPECT_EQ(a.size(), 60u) << type;  // bytes
    EXPECT_NE(a, sample(type, options(60, 1.0, 4))) << type;
  }
}

TEST_F(SampleTest, GreedyEqualsSlidingWindowArgmaxWithoutState) {
  LoadedRun r = load_run(run("transformer"));
  ASSERT_FALSE(r.model->carries_state());
  const int64_t T = r.config->get_int("train.tgt_len");
  std::vector<int64_t> ids = TextCodec(*r.dataset).encode_prompt("the cat sees");
  auto got = generate(*r.model, *r.config, ids, options(3 * T, 0.0));
  torch::NoGradGuard no_grad;
  std::vector<int64_t> naive = ids;
  for (int64_t i = 0; i < 3 * T; ++i) {
    const int64_t end = static_cast<int64_t>(naive.size());
    naive.push_back(argmax_last(r.model->forward(tokens(naive, std::max<int64_t>(0, end - T), end), model::State())));
  }
  EXPECT_EQ(got, std::vector<int64_t>(naive.begin() + static_cast<int64_t>(ids.size()), naive.end()));
}

TEST_F(SampleTest, XlAndBrtCarryTheirStatePastOneSegment) {
  for (const std::string type : {"xl", "brt"}) {
    LoadedRun r = load_run(run(type));
    ASSERT_TRUE(r.model->carries_state()) << type;
    const int64_t T = r.config->get_int("train.tgt_len");
    const int64_t B = type == "brt" ? r.config->get_int("model.brt_window") : 1;
    SampleContext context(*r.model, *r.config);
    EXPECT_EQ(context.mode(), ContextMode::kCarryState);
    EXPECT_EQ(context.block(), B);
    std::vector<int64_t> ids = TextCodec(*r.dataset).encode_prompt("the cat sees the");  // 16 bytes: one segment
    ASSERT_EQ(static_cast<int64_t>(ids.size()), T);
    auto got = generate(*r.model, *r.config, ids, options(3 * T, 0.0));
    EXPECT_EQ(got.size(), static_cast<size_t>(3 * T));
    EXPECT_EQ(got, naive_carried(*r.model, ids, 3 * T, T, B)) << type;
    // The carried state is used: after the prompt, the next distribution is not that of an empty state.
    for (int64_t t : ids) context.push(t);
    auto carried = context.next_log_probs();
    EXPECT_FALSE(context.state().empty()) << type;
    torch::NoGradGuard no_grad;
    auto fresh = r.model->forward(tokens(ids, T - 1, T), model::State()).logits[0][0].to(torch::kFloat64).log_softmax(0);
    EXPECT_FALSE(torch::allclose(carried, fresh, 1e-4, 1e-4)) << type;
  }
}

TEST_F(SampleTest, TopKOneAndTinyTopPAreGreedy) {
  std::string greedy = sample("xl", options(40, 0.0));
  EXPECT_EQ(sample("xl", options(40, 1.0, 9, /*top_k=*/1)), greedy);
  EXPECT_EQ(sample("xl", options(40, 1.0, 9, /*top_k=*/0, /*top_p=*/1e-9)), greedy);
}

TEST(DrawToken, TopKAndTopPKeepTheMostLikelyTokens) {
  auto lp = torch::tensor({0.1, 0.5, 0.15, 0.25}, torch::kFloat64).log();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 400; ++i) ++counts[draw_token(lp, options(1, 1.0, 1, 2), gen)];  // top-2: tokens 1 and 3
  EXPECT_EQ(counts[0] + counts[2], 0);
  EXPECT_GT(counts[1], counts[3]);
  EXPECT_GT(counts[3], 0);
  counts.assign(4, 0);
  // top-p 0.8: 0.5 + 0.25 = 0.75 < 0.8, so token 2 (0.15) joins; token 0 never.
  for (int i = 0; i < 400; ++i) ++counts[draw_token(lp, options(1, 1.0, 1, 0, 0.8), gen)];
  EXPECT_EQ(counts[0], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(draw_token(lp, options(1, 0.0), gen), 1);
  // Low temperature sharpens towards the argmax.
  for (int i = 0; i < 50; ++i) EXPECT_EQ(draw_token(lp, options(1, 0.01), gen), 1);
}

TEST_F(SampleTest, BadOptionsAndPromptsAreErrors) {
  EXPECT_THROW(check_sample_options(options(0, 1.0)), UsageError);
  EXPECT_THROW(check_sample_options(options(kMaxSampleTokens + 1, 1.0)), UsageError);
  EXPECT_THROW(check_sample_options(options(5, -0.5)), UsageError);
  EXPECT_THROW(check_sample_options(options(5, 1.0, 1, -1)), UsageError);
  EXPECT_THROW(check_sample_options(options(5, 1.0, 1, 0, 0.0)), UsageError);
  EXPECT_THROW(check_sample_options(options(5, 1.0, 1, 0, 1.5)), UsageError);
  EXPECT_NO_THROW(check_sample_options(options(5, 0.0, 1, 3, 0.9)));
  EXPECT_THROW(sample("xl", options(5, 1.0), ""), UsageError);
  try {
    sample_run(root_ + "/missing", "x", options(5, 1.0), [](const std::string&) {});
    FAIL() << "a missing run directory was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is not a run directory"));
  }
}

TEST_F(SampleTest, SymbolVocabulariesEncodeBySymbolAndNameAnUnknownOne) {
  data::FormalSpec spec = data::default_formal_spec(data::FormalLanguage::kD2, 3);
  spec.train.count = 20;
  spec.bin0.count = 5;
  spec.bin1.count = 5;
  data::write_formal_dataset(spec, root_ + "/d2", false);
  auto ds = data::Dataset::open(root_ + "/d2", false);
  const auto symbols = ds->symbols();
  ASSERT_GE(symbols.size(), 2u);
  TextCodec codec(*ds);
  EXPECT_EQ(codec.encode_prompt(symbols[1] + " " + symbols[0]), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(codec.render(0) + codec.render(1), " " + symbols[0] + " " + symbols[1]);
  try {
    codec.encode_prompt(symbols[0] + " zz");
    FAIL() << "an unknown symbol was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'zz'"));
  }
}

}  // namespace
}  // namespace recur::train
