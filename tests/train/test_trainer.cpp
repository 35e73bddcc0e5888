// Training end to end on a small real dataset: the loss falls below a stated bound for XL and RSA-XL,
// the run directory holds what it promises, evaluation reproduces, and the schedules match closed forms.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "data/gen.h"
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
  static double last_loss(const std::string& run) {
    std::ifstream in(run + "/metrics.jsonl");
    std::string line, last;
    while (std::getline(in, line)) {
      if (line.find("\"loss\"") != std::string::npos && line.find("\"eval\"") == std::string::npos) last = line;
    }
    return nlohmann::json::parse(last)["loss"].get<double>();
  }
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

TEST_F(TrainerTest, EveryTinyConfigTrains) {
  for (const std::string type : {"transformer", "rsa_transformer", "tl_xl", "fl_xl", "brt", "rsa_brt", "r_transformer",
                                  "recurrent_transformer"}) {
    std::string run = root_ + "/run-" + type;
    auto result = run_training(config(type, {"train.steps=5"}), run);
    EXPECT_TRUE(std::isfinite(result["loss"].get<double>())) << type;
    std::ifstream in(run + "/metrics.jsonl");
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    EXPECT_EQ(lines, 5) << type;  // log_every = 1
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
  data::FormalSpec spec = data::default_formal_spec(data::FormalLanguage::kD2, 3);
  spec.train.count = 200;
  spec.bin0.count = 50;
  spec.bin1.count = 50;
  data::write_formal_dataset(spec, root_ + "/d2", false);
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
