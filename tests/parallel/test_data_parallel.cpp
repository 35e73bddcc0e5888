// Data-parallel training with real MPI ranks: `mpirun -np 2` with per-rank batch b equals one process
// with batch 2b, ranks end bitwise identical, and the result does not depend on the bucket size.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "parallel/reducer.h"
#include "../common/runs.h"

namespace recur {
namespace {

std::string g_root;

std::string run_cmd(const std::string& cmd) {
  std::string log = g_root + "/cmd.log";
  int rc = std::system((cmd + " > " + log + " 2>&1").c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << read_file(log);
  return read_file(log);
}

// The reference learning rate (2.5e-4): at the tiny configs' 3e-3, Adam magnifies fp32 summation-order
// differences in near-zero gradients (the last layer's r_net) to about 2e-5 relative after 20 steps.
std::string recur_train(int ranks, const std::string& tiny, const std::string& run, const std::string& extra) {
  std::string base = std::string(RECUR_BINARY) + " train --config " + RECUR_SOURCE_DIR + "/configs/tiny/" + tiny +
                     ".yaml --run-dir " + run + " --set data.path=" + g_root + "/data --set train.steps=20 " +
                     "--set train.log_every=20 --set model.dropout=0 --set data.verify=false --set train.lr=2.5e-4 " + extra;
  if (ranks == 1) return run_cmd(base);
  return run_cmd("mpirun -np " + std::to_string(ranks) + " --allow-run-as-root --oversubscribe --bind-to none " + base);
}

// max over parameter tensors of ||x - y|| / ||x||.
double max_relative_difference(model::LanguageModel& a, model::LanguageModel& b) {
  double worst = 0;
  auto pa = a.named_parameters();
  auto pb = b.named_parameters();
  for (const auto& item : pa) {
    auto x = item.value().to(torch::kFloat64), y = pb[item.key()].to(torch::kFloat64);
    double rel = (x - y).norm().item<double>() / std::max(1e-12, x.norm().item<double>());
    if (rel > worst) std::printf("  %s: relative difference %.3g\n", item.key().c_str(), rel);
    worst = std::max(worst, rel);
  }
  return worst;
}

class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_root = "/tmp/recur-test-dp-" + std::to_string(::getpid());
    make_dirs(g_root);
    test::make_word_dataset(g_root, {"alpha ", "beta ", "gamma ", "delta ", "epsilon\n"}, 200000, 11);
  }
  static void TearDownTestSuite() { remove_tree(g_root); }
};

TEST_F(DataParallel, TwoRanksEqualOneProcessWithTheWholeBatch) {
  for (const std::string tiny : {"xl", "transformer"}) {
    std::string one = g_root + "/one-" + tiny, two = g_root + "/two-" + tiny;
    recur_train(1, tiny, one, "");
    recur_train(2, tiny, two, "");
    auto a = test::load_run(one), b = test::load_run(two);
    EXPECT_LT(max_relative_difference(*a, *b), 1e-5) << tiny;
    auto eval = nlohmann::json::parse(read_file(two + "/eval.json"));
    EXPECT_EQ(eval["ranks"], 2);
    EXPECT_TRUE(eval["ranks_identical"].get<bool>()) << tiny;  // bitwise equal parameters on every rank
  }
}

// train.reduce_dtype = bf16 halves the all-reduce traffic (over MPI: 16-bit words summed by a
// user-defined operation). Ranks still end bitwise identical; the result stays close to fp32 reduction.
TEST_F(DataParallel, Bf16ReductionKeepsRanksIdenticalAndCloseToFp32) {
  std::string fp32 = g_root + "/reduce-fp32", bf16 = g_root + "/reduce-bf16";
  recur_train(2, "xl", fp32, "");
  recur_train(2, "xl", bf16, "--set train.reduce_dtype=bf16");
  auto eval = nlohmann::json::parse(read_file(bf16 + "/eval.json"));
  EXPECT_TRUE(eval["ranks_identical"].get<bool>());
  auto a = test::load_run(fp32), b = test::load_run(bf16);
  double rel = max_relative_difference(*a, *b);
  EXPECT_GT(rel, 0.0) << "bf16 reduction had no effect";
  EXPECT_LT(rel, 5e-2);
}

TEST_F(DataParallel, ResultDoesNotDependOnBucketSize) {
  std::string many = g_root + "/buckets-many", one = g_root + "/buckets-one";
  recur_train(2, "rsa_xl", many, "--set train.first_bucket_mb=0.001 --set train.bucket_mb=0.002");
  recur_train(2, "rsa_xl", one, "--set train.first_bucket_mb=100 --set train.bucket_mb=100");
  auto e_many = nlohmann::json::parse(read_file(many + "/eval.json"));
  auto e_one = nlohmann::json::parse(read_file(one + "/eval.json"));
  EXPECT_GT(e_many["buckets"].get<int>(), 5);
  EXPECT_EQ(e_one["buckets"].get<int>(), 1);
  auto a = test::load_run(many), b = test::load_run(one);
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), b->named_parameters()[item.key()])) << item.key();
  }
}

TEST_F(DataParallel, MismatchedModelsAreAnErrorOnEveryRank) {
  // Rank 1 gets a different width: both ranks must fail with a message, not hang.
  std::string cmd = "mpirun -np 1 --allow-run-as-root --oversubscribe " + std::string(RECUR_BINARY) + " train --config " +
                    RECUR_SOURCE_DIR + "/configs/tiny/xl.yaml --run-dir " + g_root + "/mm --set data.path=" + g_root +
                    "/data : -np 1 " + RECUR_BINARY + " train --config " + RECUR_SOURCE_DIR +
                    "/configs/tiny/xl.yaml --run-dir " + g_root + "/mm --set data.path=" + g_root +
                    "/data --set model.d_model=48";
  std::string log = g_root + "/mm.log";
  int rc = std::system(("timeout 60 " + cmd + " > " + log + " 2>&1").c_str());
  EXPECT_NE(rc, 0);
  EXPECT_NE(WEXITSTATUS(rc), 124) << "the job hung";
  EXPECT_THAT(read_file(log), ::testing::HasSubstr("differs from rank 0"));
}

TEST(Reducer, BucketsCoverEveryParameterExactlyOnce) {
  auto comm = parallel::make_single_communicator();
  std::vector<torch::Tensor> params;
  for (int64_t n : {1000, 300000, 5, 70000, 262144, 1}) params.push_back(torch::zeros({n}, torch::requires_grad()));
  parallel::ReducerOptions o;
  o.first_bucket_mb = 0.5;
  o.bucket_mb = 1.0;
  parallel::Reducer reducer(params, *comm, o);
  ASSERT_EQ(reducer.bucket_of().size(), params.size());
  std::map<int64_t, int64_t> bytes;
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_GE(reducer.bucket_of()[i], 0);
    bytes[reducer.bucket_of()[i]] += params[i].numel() * 4;
  }
  EXPECT_EQ(reducer.num_buckets(), static_cast<int64_t>(bytes.size()));
  // Reverse order: the last parameter is in the first bucket.
  EXPECT_EQ(reducer.bucket_of().back(), 0);
  // Gradients pass through unchanged with one rank, including accumulation over micro-steps.
  auto loss = [&] {
    torch::Tensor s = torch::zeros({});
    for (size_t i = 0; i < params.size(); ++i) s = s + (params[i] * static_cast<double>(i + 1)).sum();
    return s;
  };
  loss().backward();  // micro-step 1: no communication
  reducer.prepare_for_sync();
  loss().backward();
  reducer.finalize();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i].grad(), torch::full_like(params[i], 2.0 * (i + 1)))) << i;
  }
}

// A world of one needs no MPI runtime, on a GPU either: `auto` gives the single communicator, which
// keeps the deadline it was given (and passes it to its host duplicate). A negative deadline is an error.
TEST(Communicator, AutoInAWorldOfOneIsSingleEvenOnCuda) {
  parallel::LaunchInfo alone;
  parallel::CommunicatorOptions o;
  o.cuda = true;
  o.timeout_s = 12.5;
  auto comm = parallel::make_communicator("auto", alone, o);
  EXPECT_EQ(comm->backend(), "single");
  EXPECT_EQ(comm->timeout_s(), 12.5);
  EXPECT_EQ(comm->host_duplicate()->timeout_s(), 12.5);
  EXPECT_EQ(parallel::make_communicator("auto", alone, /*cuda=*/true)->backend(), "single");
  o.timeout_s = -1;
  EXPECT_THAT([&] { parallel::make_communicator("auto", alone, o); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("train.collective_timeout_s")));
}

// After the first synchronised step the buckets follow the order in which gradients arrived, and a
// parameter that got no gradient goes to the last bucket, so it cannot hold back the others.
TEST(Reducer, BucketsFollowTheGradientsArrivalOrderAfterTheFirstStep) {
  auto comm = parallel::make_single_communicator();
  // Registration order a, b, c, unused; backward produces c's gradient first (it is used last), then
  // a's, then b's. The initial guess (reverse registration) would put `unused` first.
  auto a = torch::ones({1000}, torch::requires_grad());
  auto b = torch::ones({1000}, torch::requires_grad());
  auto c = torch::ones({1000}, torch::requires_grad());
  auto unused = torch::ones({1000}, torch::requires_grad());
  std::vector<torch::Tensor> params{a, b, c, unused};
  parallel::ReducerOptions o;
  o.first_bucket_mb = 1e-6;  // one parameter per bucket
  o.bucket_mb = 1e-6;
  parallel::Reducer reducer(params, *comm, o);
  EXPECT_EQ(reducer.bucket_of(), (std::vector<int64_t>{3, 2, 1, 0}));
  auto step = [&] {
    reducer.prepare_for_sync();
    auto hb = (b * 2).sum();              // b's gradient waits for the chain below
    auto ha = (a * 3).sum() * hb.detach(); // a: second
    auto loss = ha + hb + (c * 5).sum() * 1.0;
    loss.backward();
    reducer.finalize();
  };
  step();
  EXPECT_TRUE(torch::allclose(c.grad(), torch::full_like(c, 5.0)));
  const auto& order = reducer.bucket_of();
  EXPECT_EQ(order[3], 3) << "the parameter without a gradient goes last";
  for (int i = 0; i < 3; ++i) EXPECT_LT(order[i], 3);
  // The new layout still reduces correctly (one rank: gradients unchanged, accumulation included).
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  step();
  EXPECT_TRUE(torch::allclose(a.grad(), torch::full_like(a, 3.0 * 2000)));
  EXPECT_TRUE(torch::allclose(b.grad(), torch::full_like(b, 2.0)));
  EXPECT_TRUE(torch::allclose(c.grad(), torch::full_like(c, 5.0)));
  EXPECT_FALSE(unused.grad().defined() && unused.grad().abs().sum().item<double>() != 0);
}

}  // namespace
}  // namespace recur
