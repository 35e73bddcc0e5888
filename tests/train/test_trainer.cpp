// Training end to end on a small real dataset: the loss falls below a stated bound for XL and RSA-XL,
// the run directory holds what it promises, evaluation reproduces (and its overlapping-window protocol
// matches a naive loop), and the schedules and AdamW's decay groups match closed forms.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/metrics_file.h"
#include "data/corpora.h"
#include "data/dataset.h"
#include "data/gen.h"
#include "data/loaders.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "train/options.h"
#include "train/task.h"
#include "train/trainer.h"
#include "../common/runs.h"

namespace recur::train {
namespace {

using ::testing::HasSubstr;

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = "/tmp/recur-test-trainer-" + std::to_string(::getpid());
    make_dirs(root_);
    // A small, learnable byte corpus: sentences drawn from a tiny grammar.
    const char* subjects[] = {"the cat ", "a dog ", "my bird ", "the fish "};
    const char* verbs[] = {"sees ", "likes ", "chases ", "finds "};
    const char* objects[] = {"the ball.\n", "a mouse.\n", "the tree.\n", "some food.\n"};
    std::string text;
    uint64_t x = 12345;
    while (text.size() < 120000) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      text += std::string(subjects[(x >> 33) % 4]) + verbs[(x >> 40) % 4] + objects[(x >> 50) % 4];
    }
    write_file_atomic(root_ + "/corpus.txt", text);
    data::ShardOptions o;
    o.corpus = "bytes";
    o.inputs = {root_ + "/corpus.txt"};
    o.out_dir = root_ + "/data";
    o.progress = false;
    data::shard_corpus(o);
  }
  static void TearDownTestSuite() { remove_tree(root_); }
  static Config config(const std::string& tiny, std::vector<std::string> sets = {}) {
    sets.push_back("data.path=" + root_ + "/data");
    return Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/" + tiny + ".yaml", sets);
  }
  // A small D_2 dataset in root_/NAME: `train` strings and `bin` strings in each test bin.
  static void write_d2(const std::string& name, uint64_t seed, int64_t train, int64_t bin) {
    data::FormalSpec spec = data::default_formal_spec(data::FormalLanguage::kD2, seed);
    spec.train.count = train;
    spec.bin0.count = bin;
    spec.bin1.count = bin;
    data::write_formal_dataset(spec, root_ + "/" + name, false);
  }
  static double last_loss(const std::string& run) { return read_metrics(run).train.back()["loss"].get<double>(); }
  static std::string root_;
};
std::string TrainerTest::root_;

TEST_F(TrainerTest, XlAndRsaXlDriveLossBelowBound) {
  // ln(256) = 5.55 nats at the start. The grammar draws 3 words of 4 per ~20-byte sentence: 6 bits
  // per sentence, about 0.2 nats per byte. A model that has learned the words gets below 0.5.
  for (const std::string type : {"xl", "rsa_xl"}) {
    std::string run = root_ + "/run-" + type;
    auto result = run_training(config(type, {"train.steps=400", "train.batch_size=8", "train.log_every=20"}), run);
    double loss = last_loss(run);
    EXPECT_LT(loss, 0.5) << type;
    EXPECT_TRUE(path_exists(run + "/config.yaml"));
    EXPECT_TRUE(path_exists(run + "/model.pt"));
    EXPECT_TRUE(path_exists(run + "/eval.json"));
    EXPECT_LT(result["bpc"].get<double>(), 1.0) << type;
    if (type == "rsa_xl") EXPECT_EQ(result["rsa_gates"].size(), 2u);
    // recur eval reloads the run and reproduces the final evaluation.
    auto again = run_evaluation(run, "valid", {});
    EXPECT_NEAR(again["loss"].get<double>(), result["loss"].get<double>(), 1e-6) << type;
  }
}

// Issue 17, finding 8: a split the run needs at the end (valid, eval.extra_splits) is checked before
// step 1, so a typo costs seconds, not the whole run.
TEST_F(TrainerTest, MissingSplitsAreFoundBeforeTheFirstStep) {
  const std::string run = root_ + "/missing-split";
  EXPECT_THAT([&] { run_training(config("xl", {"train.steps=50", "eval.extra_splits=[nosuch]"}), run); },
              ::testing::ThrowsMessage<Error>(HasSubstr("no split 'nosuch'")));
  EXPECT_FALSE(path_exists(run + "/metrics.jsonl")) << "training started before the split was checked";
  EXPECT_FALSE(path_exists(run + "/checkpoints"));
}

// Issue 15: an FL-XL trained at one memory length evaluates, during and after training, at four times
// that memory (keys beyond the learned span contribute 0), and again through `recur eval`'s path.
TEST_F(TrainerTest, FlXlTrainedAtOneMemoryEvaluatesAtFourTimesIt) {
  const std::string run = root_ + "/fl-long-memory";
  Config c = config("fl_xl", {"train.steps=6", "train.eval_every=3"});
  const int64_t M = c.get_int("model.mem_len");
  c = config("fl_xl", {"train.steps=6", "train.eval_every=3", "eval.mem_len=" + std::to_string(4 * M),
                       "eval.train_mem_len=" + std::to_string(4 * M)});
  auto result = run_training(c, run, "never");
  EXPECT_TRUE(std::isfinite(result["loss"].get<double>()));
  auto again = run_evaluation(run, "valid", {});
  EXPECT_DOUBLE_EQ(again["loss"].get<double>(), result["loss"].get<double>());
}

TEST_F(TrainerTest, EveryTinyConfigTrains) {
  for (const std::string type : {"transformer", "rsa_transformer", "tl_xl", "fl_xl", "brt", "rsa_brt", "r_transformer",
                                  "recurrent_transformer", "gpt"}) {
    std::string run = root_ + "/run-" + type;
    auto result = run_training(config(type, {"train.steps=5"}), run);
    EXPECT_TRUE(std::isfinite(result["loss"].get<double>())) << type;
    const MetricsFile metrics = read_metrics(run);
    EXPECT_EQ(metrics.train.size(), 5u) << type;  // log_every = 1
    EXPECT_TRUE(metrics.evals.empty()) << type;
  }
}

// train.precision = bf16: the forward runs under autocast (here CPU autocast; CUDA on GPUs), while the
// parameters (master weights), gradients and Adam state stay fp32. The run differs from the fp32 run
// (autocast took effect) but learns as well.
TEST_F(TrainerTest, Bf16AutocastKeepsFp32MasterWeights) {
  for (const std::string type : {"xl", "brt"}) {
    std::string fp32 = root_ + "/prec-fp32-" + type, bf16 = root_ + "/prec-bf16-" + type;
    auto a = run_training(config(type, {"train.steps=60", "train.log_every=60"}), fp32);
    auto b = run_training(config(type, {"train.steps=60", "train.log_every=60", "train.precision=bf16"}), bf16);
    auto ma = test::load_run(fp32), mb = test::load_run(bf16);
    bool any_differs = false;
    for (const auto& item : mb->named_parameters()) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat32) << item.key();
      any_differs = any_differs || !torch::equal(item.value(), ma->named_parameters()[item.key()]);
    }
    EXPECT_TRUE(any_differs) << type << ": bf16 autocast had no effect";
    EXPECT_NEAR(b["loss"].get<double>(), a["loss"].get<double>(), 0.1) << type;
    EXPECT_LT(b["loss"].get<double>(), 3.0) << type;  // it learned (ln 256 = 5.5 at the start)
  }
}

TEST_F(TrainerTest, FormalLanguageRunReportsSequenceAccuracy) {
  write_d2("d2", 3, 200, 50);
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/rsa_transformer.yaml",
                          {"data.path=" + root_ + "/d2", "train.steps=40", "train.batch_size=8", "model.max_len=256", "train.log_every=20"});
  auto result = run_training(c, root_ + "/run-d2");
  ASSERT_TRUE(result.contains("sequence_accuracy"));
  EXPECT_GE(result["sequence_accuracy"].get<double>(), 0.0);
  EXPECT_LE(result["sequence_accuracy"].get<double>(), 1.0);
  EXPECT_EQ(result["sequences"].get<double>(), 50.0);
  EXPECT_GE(result["token_accuracy"].get<double>(), result["sequence_accuracy"].get<double>());
  EXPECT_EQ(result["rsa_gates"].size(), 2u);
  auto test = run_evaluation(root_ + "/run-d2", "test", {});
  EXPECT_EQ(test["sequences"].get<double>(), 50.0);
}

// model.initial_memory = zeros (the formal languages' SAN-Rel): evaluation of examples runs from the
// model's mem_len zero memories with its same_length and clamp_len, as training does. The run's valid
// loss and accuracies equal a hand loop over the examples, one at a time, through a model without the
// option that is handed explicit zero memories.
TEST_F(TrainerTest, ZeroInitialMemoryEvaluatesLikeExplicitZeroMemories) {
  write_d2("d2-zeros", 4, 100, 12);
  const std::vector<std::string> san_rel = {"data.path=" + root_ + "/d2-zeros", "train.steps=6", "train.batch_size=8",
                                            "train.log_every=3", "model.mem_len=32", "model.same_length=true",
                                            "model.clamp_len=20", "model.dropout=0.0", "model.dropatt=0.0"};
  auto with = san_rel;
  with.push_back("model.initial_memory=zeros");
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", with);
  auto result = run_training(c, root_ + "/run-zeros");
  auto ds = data::Dataset::open(root_ + "/d2-zeros", false);
  const int64_t V = static_cast<int64_t>(ds->manifest().vocab.size);
  auto plain = model::make_model(Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", san_rel), V);
  torch::load(plain, root_ + "/run-zeros/model.pt");
  plain->eval();
  plain->set_eval_settings(32, true, 20);
  torch::NoGradGuard no_grad;
  const auto& split = ds->split("valid");
  // A hand loop over the examples, one at a time, each starting from `start`.
  auto hand = [&](const model::State& start) {
    EvalSums sums;
    for (uint64_t i = 0; i < split.examples(); ++i) {
      data::TokenBatch tb;
      data::fill_examples(split, {i}, &tb);
      Batch b = make_batch(tb, Task::kLabelSets);
      sums.add(Task::kLabelSets, *plain, plain->forward(b.input, start), b);
    }
    return sums.result(Task::kLabelSets, false);
  };
  model::State zeros;
  for (int64_t l = 0; l <= c.get_int("model.n_layer"); ++l) {
    zeros.tensors["mems." + std::to_string(l)] = torch::zeros({1, 32, c.get_int("model.d_model")});
  }
  auto want = hand(zeros);
  EXPECT_NEAR(result["loss"].get<double>(), want["loss"].get<double>(), 1e-5);
  EXPECT_DOUBLE_EQ(result["token_accuracy"].get<double>(), want["token_accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(result["sequence_accuracy"].get<double>(), want["sequence_accuracy"].get<double>());
  EXPECT_EQ(result["bit_accuracy"], want["bit_accuracy"]);
  // without the zero memories the same weights score differently: the option is not a no-op
  auto none = hand(model::State());
  EXPECT_GT(std::abs(none["loss"].get<double>() - want["loss"].get<double>()), 1e-4);
}

// eval.every_epoch on a small D_2 (25 steps an epoch): metrics.jsonl holds an evaluation of both bins at
// every epoch's end, eval.json's best.NAME is each bin's best over those records (>= the last epoch's,
// possibly at different steps), the stop rule ends the run at the first epoch whose mean reaches the
// threshold with a final checkpoint and eval.json, and a resumed run re-derives the best from metrics.jsonl.
class EpochEvalTest : public TrainerTest {
 protected:
  // 8 epochs of 25 steps (200 strings, batch 8). With 4, some CPUs (whose MKL kernels round otherwise)
  // got no string of either bin right before the last epoch, and the stop rule had no threshold.
  static constexpr int64_t kEpoch = 25, kSteps = 200;
  static void SetUpTestSuite() {
    TrainerTest::SetUpTestSuite();
    data::FormalSpec spec = data::default_formal_spec(data::FormalLanguage::kD2, 5);
    spec.train = {200, 2, 20};
    spec.bin0 = {40, 2, 20};
    spec.bin1 = {40, 21, 30};
    data::write_formal_dataset(spec, root_ + "/d2-epochs", false);
  }
  static Config fl(std::vector<std::string> sets) {
    std::vector<std::string> all = {"data.path=" + root_ + "/d2-epochs", "train.batch_size=8", "model.max_len=64",
                                    "train.log_every=10", "eval.every_epoch=true", "eval.extra_splits=[test]",
                                    "model.tie_output=false", "model.init=bhattamishra", "train.label_loss=mse",
                                    "train.clip=0", "train.lr=1e-2", "checkpoint.every_minutes=0"};
    all.insert(all.end(), sets.begin(), sets.end());
    return Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/transformer.yaml", all);
  }
};

TEST_F(EpochEvalTest, EveryEpochEvaluatesBothBinsAndReportsEachBinsBest) {
  const std::string run = root_ + "/run-epochs";
  auto result = run_training(fl({fmt::format("train.steps={}", kSteps)}), run);
  auto evals = read_metrics(run).evals;
  ASSERT_EQ(evals.size(), static_cast<size_t>(kSteps / kEpoch));
  double best_valid = -1, best_test = -1;
  for (size_t k = 0; k < evals.size(); ++k) {
    EXPECT_EQ(evals[k]["step"], kEpoch * static_cast<int64_t>(k + 1));
    const auto& e = evals[k]["eval"];
    ASSERT_TRUE(e.contains("sequence_accuracy") && e["splits"]["test"].contains("sequence_accuracy")) << e.dump();
    EXPECT_EQ(e["sequences"].get<double>(), 40.0);
    EXPECT_EQ(e["splits"]["test"]["sequences"].get<double>(), 40.0);
    best_valid = std::max(best_valid, e["sequence_accuracy"].get<double>());
    best_test = std::max(best_test, e["splits"]["test"]["sequence_accuracy"].get<double>());
  }
  // Ours: the last step's (the last record's numbers, evaluated again at the end).
  EXPECT_EQ(result["step"], kSteps);
  EXPECT_DOUBLE_EQ(result["sequence_accuracy"].get<double>(), evals.back()["eval"]["sequence_accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(result["splits"]["test"]["sequence_accuracy"].get<double>(),
                   evals.back()["eval"]["splits"]["test"]["sequence_accuracy"].get<double>());
  // The paper's: each bin's best, with its step.
  ASSERT_TRUE(result.contains("best")) << result.dump();
  EXPECT_DOUBLE_EQ(result["best"]["valid"]["sequence_accuracy"].get<double>(), best_valid);
  EXPECT_DOUBLE_EQ(result["best"]["test"]["sequence_accuracy"].get<double>(), best_test);
  EXPECT_GE(best_valid, result["sequence_accuracy"].get<double>());
  EXPECT_GE(best_test, result["splits"]["test"]["sequence_accuracy"].get<double>());
  for (const char* split : {"valid", "test"}) {
    const int64_t at = result["best"][split]["step"].get<int64_t>();
    EXPECT_TRUE(at % kEpoch == 0 && at >= kEpoch && at <= kSteps) << split << " " << at;
  }
  EXPECT_FALSE(result.contains("stopped_early"));
  EXPECT_EQ(nlohmann::json::parse(read_file(run + "/eval.json"))["best"], result["best"]);

  // Resumed: half the epochs, then the rest from the checkpoint; the best comes back from metrics.jsonl.
  const std::string split_run = root_ + "/run-epochs-resumed";
  run_training(fl({fmt::format("train.steps={}", kSteps / 2)}), split_run);
  auto resumed = run_training(fl({fmt::format("train.steps={}", kSteps)}), split_run, "auto");
  EXPECT_EQ(resumed["best"], result["best"]);
  EXPECT_EQ(read_metrics(split_run).evals.size(), static_cast<size_t>(kSteps / kEpoch));

  // The stop rule: a threshold first met by the mean at an epoch before the last ends the run there.
  double threshold = 0;
  int64_t first = 0;
  for (const auto& r : evals) {
    const auto& e = r["eval"];
    const double mean = (e["sequence_accuracy"].get<double>() + e["splits"]["test"]["sequence_accuracy"].get<double>()) / 2;
    if (r["step"].get<int64_t>() < kSteps && mean > threshold) threshold = mean;
  }
  ASSERT_GT(threshold, 0.0) << "the model learned nothing before its last epoch; the stop rule cannot be tested";
  for (const auto& r : evals) {
    const auto& e = r["eval"];
    const double mean = (e["sequence_accuracy"].get<double>() + e["splits"]["test"]["sequence_accuracy"].get<double>()) / 2;
    if (first == 0 && mean >= threshold) first = r["step"].get<int64_t>();
  }
  const std::string stop_run = root_ + "/run-epochs-stop";
  auto stopped = run_training(fl({fmt::format("train.steps={}", kSteps), fmt::format("train.stop_at_mean_accuracy={:.17g}", threshold - 1e-9)}), stop_run);
  ASSERT_TRUE(stopped.contains("stopped_early")) << stopped.dump();
  EXPECT_EQ(stopped["stopped_early"]["step"], first);
  EXPECT_EQ(stopped["step"], first);
  EXPECT_EQ(read_metrics(stop_run).evals.size(), static_cast<size_t>(first / kEpoch));
  EXPECT_LE(read_metrics(stop_run).train.back()["step"].get<int64_t>(), first);
  EXPECT_EQ(read_metrics(stop_run).train.back()["step"].get<int64_t>(), first);  // the open window was logged
  EXPECT_TRUE(path_exists(stop_run + "/model.pt"));
  // Resumed, the stopped run trains no further and keeps its result.
  auto again = run_training(fl({fmt::format("train.steps={}", kSteps), fmt::format("train.stop_at_mean_accuracy={:.17g}", threshold - 1e-9)}),
                            stop_run, "auto");
  EXPECT_EQ(again["step"], first);
  EXPECT_EQ(read_metrics(stop_run).evals.size(), static_cast<size_t>(first / kEpoch));
}

TEST_F(EpochEvalTest, StopRuleNeedsTheEpochEvaluation) {
  try {
    run_training(fl({"train.steps=10", "eval.every_epoch=false", "train.stop_at_mean_accuracy=0.999"}), root_ + "/run-bad-stop");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("needs eval.every_epoch"));
  }
  try {
    run_training(fl({"train.label_loss=l2"}), root_ + "/run-bad-loss");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("train.label_loss"));
  }
}

TEST_F(TrainerTest, VocabularyMismatchStopsBeforeTraining) {
  try {
    run_training(config("xl", {"model.vocab_size=100"}), root_ + "/run-bad");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.vocab_size = 100"));
  }
  EXPECT_FALSE(path_exists(root_ + "/run-bad/metrics.jsonl"));
}

TEST_F(TrainerTest, NonFiniteLossStopsWithStepAndHint) {
  try {
    run_training(config("xl", {"train.lr=1e30", "train.clip=0", "train.steps=30"}), root_ + "/run-nan");
    FAIL() << "expected the loss to diverge";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("at step"));
    EXPECT_THAT(e.what(), HasSubstr("train.nan_policy"));
  }
}

// A stand-in model for the evaluation protocol: it records every window it is given and predicts
// uniformly where a position has at least `context` earlier tokens in its window, and a confident wrong
// token (0, absent from the corpus) elsewhere, so a scored position with less context raises the loss.
class WindowRecorder : public model::LanguageModel {
 public:
  WindowRecorder(int64_t vocab, int64_t context) : vocab_(vocab), context_(context) {
    register_parameter("unused", torch::zeros({1}));
  }
  model::ForwardResult forward(const torch::Tensor& tokens, const model::State&) override {
    for (int64_t r = 0; r < tokens.size(0); ++r) windows.push_back(tokens[r].clone());
    auto logits = torch::zeros({tokens.size(0), tokens.size(1), vocab_});
    logits.slice(1, 0, context_).select(2, 0).fill_(50.0);
    return {logits, {}};
  }
  std::string type() const override { return "window_recorder"; }
  std::vector<torch::Tensor> windows;

 private:
  int64_t vocab_, context_;
};

// eval.score_last = N with windows of T: windows start every N tokens and score their last N positions
// (the last window may be shorter), so every scored position has T - N earlier tokens in its window,
// and every target of the split after the first T - N is scored exactly once: checked with a naive loop
// over the windows the model saw, at the R-Transformer's 400/320 and at 10/8.
TEST_F(TrainerTest, OverlappingWindowEvaluationScoresTheLastPositions) {
  auto ds = data::Dataset::open(root_ + "/data", false);
  const data::Split& split = ds->split("valid");
  const int64_t L = static_cast<int64_t>(split.tokens());
  std::vector<int64_t> tokens(static_cast<size_t>(L));
  split.read_tokens(0, static_cast<uint64_t>(L), tokens.data());
  for (auto [T, N] : std::vector<std::pair<int64_t, int64_t>>{{400, 320}, {10, 8}}) {
    SCOPED_TRACE("window " + std::to_string(T) + " stride " + std::to_string(N));
    const int64_t C = T - N;
    WindowRecorder model(256, C);
    Config c = Config::from_overrides({"eval.tgt_len=" + std::to_string(T), "eval.score_last=" + std::to_string(N), "eval.batch_size=3"});
    auto j = evaluate(model, *ds, "valid", c);
    EXPECT_NEAR(j["loss"].get<double>(), std::log(256.0), 1e-9);  // no scored position has less context
    EXPECT_EQ(j["positions"].get<double>(), static_cast<double>(L - 1 - C));
    // The naive loop: window k starts at kN and holds min(T, L - 1 - kN) inputs; it scores the targets
    // kN + 1 + t for t in [C, its length). Together: every target in [C + 1, L) once.
    std::vector<int> scored(static_cast<size_t>(L), 0);
    int64_t k = 0;
    for (int64_t s = 0; s + C < L - 1; s += N, ++k) {
      ASSERT_LT(k, static_cast<int64_t>(model.windows.size()));
      const int64_t len = std::min(T, L - 1 - s);
      const auto& w = model.windows[static_cast<size_t>(k)];
      ASSERT_EQ(w.size(0), len) << "window " << k;
      EXPECT_TRUE(torch::equal(w, torch::tensor(std::vector<int64_t>(tokens.begin() + s, tokens.begin() + s + len)))) << k;
      if (len == T) EXPECT_EQ(len - C, N);  // a full window scores its last N = 320 of 400
      for (int64_t t = C; t < len; ++t) ++scored[static_cast<size_t>(s + 1 + t)];
    }
    EXPECT_EQ(k, static_cast<int64_t>(model.windows.size()));
    for (int64_t target = 1; target < L; ++target) EXPECT_EQ(scored[static_cast<size_t>(target)], target > C ? 1 : 0) << target;
  }
  WindowRecorder model(256, 0);
  try {
    evaluate(model, *ds, "valid", Config::from_overrides({"eval.tgt_len=10", "eval.score_last=11"}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("eval.score_last = 11"));
  }
}

// AdamW as nanoGPT's configure_optimizers: weight decay on the parameters of two or more dimensions only.
// With zero gradients Adam's step is 0, so one step is the decoupled decay alone: p (1 - lr wd) or p.
TEST(Optimizer, AdamwDecaysOnlyMatricesAndEmbeddings) {
  Config c = Config::from_overrides({"model.type=gpt", "model.n_layer=1", "model.n_head=2", "model.d_model=8",
                                     "model.pos_enc=learned", "model.max_len=8", "train.optimizer=adamw", "train.lr=0.1",
                                     "train.weight_decay=0.5"});
  auto model = model::make_model(c, 11);
  auto opt = make_optimizer(TrainOptions::from(c), model->parameters());
  ASSERT_EQ(opt->param_groups().size(), 2u);
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : model->named_parameters()) {
    before[p.key()] = p.value().detach().clone();
    p.value().mutable_grad() = torch::zeros_like(p.value());
  }
  opt->step();
  int matrices = 0, vectors = 0;
  for (const auto& p : model->named_parameters()) {
    const bool decayed = p.value().dim() >= 2;
    (decayed ? matrices : vectors) += 1;
    EXPECT_TRUE(torch::allclose(p.value(), before[p.key()] * (decayed ? 1.0 - 0.1 * 0.5 : 1.0), 1e-6, 0.0)) << p.key();
  }
  EXPECT_EQ(matrices, 6);  // wte, wpe, c_attn, attn.c_proj, c_fc, mlp.c_proj
  EXPECT_EQ(vectors, 3);   // ln_1, ln_2, ln_f gains
  // Adam and SGD keep one group with the configured decay.
  Config a = Config::from_overrides({"train.optimizer=adam", "train.weight_decay=0.5"});
  EXPECT_EQ(make_optimizer(TrainOptions::from(a), model->parameters())->param_groups().size(), 1u);
}

TEST(Schedules, MatchClosedForms) {
  Config c = Config::from_overrides({"train.lr=1.0", "train.steps=110", "train.warmup_steps=10", "train.schedule=cosine"});
  EXPECT_DOUBLE_EQ(learning_rate(c, 0, 1), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9, 1), 1.0);
  EXPECT_NEAR(learning_rate(c, 10, 1), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(c, 60, 1), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(c, 110, 1), 0.0, 1e-12);
  Config h = Config::from_overrides({"train.lr=0.8", "train.schedule=halve", "train.halve_every_epochs=5"});
  EXPECT_DOUBLE_EQ(learning_rate(h, 49, 10), 0.8);
  EXPECT_DOUBLE_EQ(learning_rate(h, 50, 10), 0.4);
  EXPECT_DOUBLE_EQ(learning_rate(h, 100, 10), 0.2);
  Config k = Config::from_overrides({"train.lr=0.3", "train.schedule=constant"});
  EXPECT_DOUBLE_EQ(learning_rate(k, 1000, 10), 0.3);
}

}  // namespace
}  // namespace recur::train
