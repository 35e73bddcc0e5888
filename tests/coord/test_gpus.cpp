// GPU placement (issue 21) on a real SQLite file: an agent's inventory as nvidia-smi prints it or --gpus
// names it; leases hand out only GPUs the agent advertised, offered and does not already use, so no GPU
// is ever in two running trials; a trial larger than every live agent waits with a reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>

#include "coord/gpus.h"
#include "coord/store.h"
#include "coord/sweep.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur::coord {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

SweepSpec spec_of(int trials, int64_t ranks, int64_t gpus) {
  SweepSpec s;
  s.name = "gpus";
  s.base_yaml = "model:\n  type: xl\n";
  s.axes = {"model.n_layer"};
  s.metric = "bpc";
  s.ranks = ranks;
  s.gpus = gpus;
  for (int i = 0; i < trials; ++i) {
    TrialSpec t;
    t.point = {{"model.n_layer", i + 1}};
    s.trials.push_back(t);
  }
  return s;
}

json inventory(std::vector<int> ids) { return gpus_to_json(select_gpus({}, ids)); }

class StoreDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/recur-test-gpus-" + std::to_string(::getpid());
    remove_tree(dir_);
    make_dirs(dir_);
  }
  void TearDown() override { remove_tree(dir_); }
  std::string dir_;
};

TEST(Gpus, NvidiaSmiInventoryParses) {
  const auto g = parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, 81559\n1, Tesla V100-SXM2-32GB, 32768\n\n", "nvidia-smi");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[1].index, 1);
  EXPECT_EQ(g[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(g[1].memory_mib, 32768);
  EXPECT_EQ(parse_nvidia_smi("3, Odd, Name, 10", "x")[0].name, "Odd, Name");  // commas in the model name
  EXPECT_TRUE(parse_nvidia_smi("", "x").empty());
  EXPECT_THAT([] { parse_nvidia_smi("0, A, 10\nNo devices were found", "nvidia-smi"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("nvidia-smi: line 2 is not 'INDEX, NAME, MEMORY_MIB'")));
  EXPECT_THAT([] { parse_nvidia_smi("0, A, 10\n0, B, 10", "x"); }, ::testing::ThrowsMessage<Error>(HasSubstr("GPU 0 is listed twice")));
  // --gpus keeps what detection knows about the ids it names
  const auto chosen = select_gpus(g, {1, 5});
  EXPECT_EQ(chosen[0].name, "Tesla V100-SXM2-32GB");
  EXPECT_EQ(chosen[1].index, 5);
  EXPECT_EQ(chosen[1].name, "");
  EXPECT_THAT([] { select_gpus({}, {1, 1}); }, ::testing::ThrowsMessage<Error>(HasSubstr("--gpus: GPU 1 is listed twice")));
  // JSON round trip, and what agents sent before GPU placement
  const auto back = gpus_from_json(gpus_to_json(g), "t");
  EXPECT_EQ(back[0].name, g[0].name);
  EXPECT_EQ(back[1].memory_mib, g[1].memory_mib);
  EXPECT_EQ(gpus_from_json("0,2", "t").size(), 2u);
  EXPECT_TRUE(gpus_from_json("", "t").empty());
  EXPECT_THAT([] { gpus_from_json(json::array({{{"index", -1}}}), "field 'gpus'"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("field 'gpus': each GPU must be an object")));
  EXPECT_THAT([] { gpus_from_json("0;rm", "t"); }, ::testing::ThrowsMessage<Error>(HasSubstr("not a list of GPU ids")));
  EXPECT_EQ(gpu_id_list({0, 3}), "0,3");
  // an agent inside a job limited to some GPUs offers only those (as physical ids, which is what its
  // trials' CUDA_VISIBLE_DEVICES will name)
  const auto four = parse_nvidia_smi("0, A, 1\n1, A, 1\n2, A, 1\n3, A, 1\n", "x");
  const auto visible = restrict_to_visible(four, "3,1");
  ASSERT_EQ(visible.size(), 2u);
  EXPECT_EQ(visible[0].index, 3);
  EXPECT_TRUE(restrict_to_visible(four, "").empty());
  EXPECT_THAT([&] { restrict_to_visible(four, "GPU-5b3c"); }, ::testing::ThrowsMessage<Error>(HasSubstr("name the GPUs with --gpus")));
}

TEST(Gpus, ResourcesGpusArePerTrialAndSplitEvenlyOverRanks) {
  EXPECT_EQ(check_gpus(2, 4), "");
  EXPECT_EQ(check_gpus(3, 0), "");
  EXPECT_THAT(check_gpus(2, 3), HasSubstr("resources.gpus (3) is per trial and must be 0 or a multiple of resources.ranks (2)"));
  EXPECT_THAT(check_gpus(1, -1), HasSubstr("must be >= 0"));
  SweepSpec s = spec_of(1, 2, 1);
  EXPECT_THAT([&] { SweepSpec::from_json(s.to_json()); }, ::testing::ThrowsMessage<Error>(HasSubstr("sweep: resources.gpus (1)")));
  const std::string dir = "/tmp/recur-test-gpus-spec-" + std::to_string(::getpid());
  make_dirs(dir);
  write_file_atomic(dir + "/base.yaml", "model:\n  type: xl\n");
  write_file_atomic(dir + "/spec.yaml", "base: base.yaml\nresources: {ranks: 2, gpus: 3}\n");
  EXPECT_THAT([&] { load_sweep_spec(dir + "/spec.yaml"); },
              ::testing::ThrowsMessage<Error>(HasSubstr(dir + "/spec.yaml: resources.gpus (3) is per trial")));
  write_file_atomic(dir + "/spec.yaml", "base: base.yaml\nresources: {ranks: 2, gpus: 4}\n");
  EXPECT_EQ(load_sweep_spec(dir + "/spec.yaml").gpus, 4);
  remove_tree(dir);
}

// Leases pick the lowest GPUs that are offered, advertised and not held by the agent's running trials:
// an agent that offers a busy GPU (or one it never advertised) does not get it.
TEST_F(StoreDir, LeasesHandOutOnlyFreeAdvertisedGpus) {
  Store s(dir_ + "/s.db");
  const int64_t two = s.create_sweep(spec_of(3, 1, 2));
  const int64_t cpu = s.create_sweep(spec_of(1, 1, 0));
  const int64_t a = s.register_agent("a", 8, inventory({0, 1, 2, 3}), "/w");
  const int64_t b = s.register_agent("b", 8, inventory({0, 1}), "/v");  // ids are per agent: b's 0 is not a's 0
  const GpuOffer all{{3, 2, 1, 0, 9}};
  json t1 = s.lease(a, 8, 60, all);
  EXPECT_EQ(t1["gpu_ids"], json({0, 1}));
  json t2 = s.lease(a, 8, 60, all);  // 0 and 1 are offered again, by mistake
  EXPECT_EQ(t2["gpu_ids"], json({2, 3}));
  json t3 = s.lease(a, 8, 60, all);  // no GPU left: only the CPU trial fits
  EXPECT_EQ(t3["sweep"], cpu);
  EXPECT_EQ(t3["gpu_ids"], json::array());
  EXPECT_TRUE(s.lease(a, 8, 60, all).is_null());
  EXPECT_EQ(s.trial(t1["id"])["gpu_ids"], json({0, 1}));
  EXPECT_EQ(s.sweep(two)["trials"][0]["gpus"], 2);
  json t4 = s.lease(b, 8, 60, GpuOffer{{0, 1, 7}});
  EXPECT_EQ(t4["gpu_ids"], json({0, 1}));
  s.report(t1["id"], a, 1, "succeeded", json{{"bpc", 1.0}}, "");
  EXPECT_EQ(s.trial(t1["id"])["gpu_ids"], json::array());  // released with the lease
  EXPECT_TRUE(s.lease(a, 8, 60, GpuOffer{{0}}).is_null());  // one free GPU is not two
  EXPECT_TRUE(s.lease(a, 8, 60, GpuOffer{{}}).is_null());
  // an expired lease gives its GPUs back; the Slurm executor takes any trial and holds no ids
  EXPECT_EQ(s.expire_leases(wall_now() + 3600), 3);
  EXPECT_EQ(s.trial(t2["id"])["gpu_ids"], json::array());
  const int64_t slurm = s.register_agent("slurm-executor", 1 << 20, "any", "/s");
  json t5 = s.lease(slurm, 1 << 20, 60, GpuOffer{{}, /*any=*/true});
  EXPECT_EQ(t5["gpus"], 2);
  EXPECT_EQ(t5["gpu_ids"], json::array());
  EXPECT_THAT([&] { s.register_agent("bad", 1, json{{"index", 0}}, "/x"); }, ::testing::ThrowsMessage<Error>(HasSubstr("agent 'bad'")));
}

// Random leases (agents offering everything, right or wrong), reports, requeues and expiries: after every
// step no (agent, GPU) is held by two running trials, and each running trial holds exactly its GPUs.
TEST_F(StoreDir, NoGpuIsEverInTwoRunningTrials) {
  Store s(dir_ + "/s.db");
  std::vector<int64_t> sweeps = {s.create_sweep(spec_of(20, 1, 2)), s.create_sweep(spec_of(20, 1, 1)),
                                 s.create_sweep(spec_of(10, 2, 4)), s.create_sweep(spec_of(10, 1, 0))};
  const std::vector<int64_t> agents = {s.register_agent("a", 4, inventory({0, 1}), "/a"), s.register_agent("b", 8, inventory({2, 3, 4, 5}), "/b"),
                                       s.register_agent("c", 8, inventory({0, 1, 2, 3, 4, 5, 6, 7}), "/c")};
  std::mt19937 rng(21);
  std::map<int64_t, std::pair<int64_t, int64_t>> running;  // trial -> (agent, attempt)
  int64_t leases = 0, max_concurrent_gpus = 0;
  for (int step = 0; step < 400; ++step) {
    const int r = static_cast<int>(rng() % 10);
    if (r < 6) {
      const int64_t agent = agents[rng() % agents.size()];
      json t = s.lease(agent, 8, 600, GpuOffer{{0, 1, 2, 3, 4, 5, 6, 7}});
      if (t.is_object()) {
        running[t["id"]] = {agent, t["attempt"]};
        ++leases;
      }
    } else if (r < 9 && !running.empty()) {
      auto it = running.begin();
      std::advance(it, rng() % running.size());
      const char* status[] = {"succeeded", "failed", "requeue"};
      s.report(it->first, it->second.first, it->second.second, status[rng() % 3], json{{"bpc", 1.0}}, "");
      running.erase(it);
    } else if (!running.empty() && rng() % 4 == 0) {
      s.expire_leases(wall_now() + 3600);
      running.clear();
    }
    std::set<std::pair<int64_t, int>> held;
    int64_t gpus_in_use = 0;
    for (int64_t id : sweeps) {
      const json sweep = s.sweep(id);  // named: the loop must not walk a destroyed temporary
      for (const auto& t : sweep["trials"]) {
        const auto ids = t["gpu_ids"].get<std::vector<int>>();
        if (t["state"] != "running") {
          EXPECT_TRUE(ids.empty()) << t.dump();
          continue;
        }
        EXPECT_EQ(static_cast<int64_t>(ids.size()), t["gpus"].get<int64_t>()) << t.dump();
        for (int g : ids) {
          EXPECT_TRUE(held.insert({t["agent"].get<int64_t>(), g}).second) << "GPU " << g << " of agent " << t["agent"] << " twice, step " << step;
        }
        gpus_in_use += static_cast<int64_t>(ids.size());
      }
    }
    max_concurrent_gpus = std::max(max_concurrent_gpus, gpus_in_use);
  }
  EXPECT_GT(leases, 50);
  EXPECT_GT(max_concurrent_gpus, 8);  // the agents were busy at once, not one trial at a time
}

// A trial that no live agent could ever run waits, and says why; one that merely waits for room does not.
TEST_F(StoreDir, ATrialLargerThanEveryAgentWaitsWithAReason) {
  Store s(dir_ + "/s.db");
  const int64_t big = s.create_sweep(spec_of(1, 2, 4));
  auto why = [&](int64_t sweep) { return s.sweep(sweep)["trials"][0].value("waiting", std::string()); };
  EXPECT_EQ(why(big), "no agent is connected");
  const int64_t a = s.register_agent("a", 2, inventory({0, 1}), "/a");
  EXPECT_TRUE(s.lease(a, 2, 60, GpuOffer{{0, 1}}).is_null());
  EXPECT_EQ(why(big), "needs 4 GPUs; the largest agent has 2");
  s.register_agent("b", 1, inventory({0, 1, 2, 3, 4, 5, 6, 7}), "/b");
  EXPECT_EQ(why(big), "needs 2 ranks and 4 GPUs on one agent; no agent has both");
  const int64_t wide = s.create_sweep(spec_of(1, 16, 0));
  EXPECT_EQ(why(wide), "needs 16 ranks; the largest agent has 2 slots");
  const int64_t c = s.register_agent("c", 4, inventory({0, 1, 2, 3}), "/c");
  EXPECT_EQ(why(big), "");  // c could run it
  json t = s.lease(c, 4, 60, GpuOffer{{0, 1, 2, 3}});
  EXPECT_EQ(t["sweep"], big);
  EXPECT_EQ(t["gpu_ids"], json({0, 1, 2, 3}));
  s.set_held(Store::Scope::kSweep, wide, true);
  EXPECT_EQ(why(wide), "");  // held: that is its reason
  s.set_held(Store::Scope::kSweep, wide, false);
  // agents not seen within the timeout do not count
  Store strict(dir_ + "/s.db", /*agent_timeout_s=*/-1);
  EXPECT_EQ(strict.sweep(wide)["trials"][0]["waiting"], "no agent is connected");
  // the Slurm executor places GPUs itself: any size fits it
  s.register_agent("slurm-executor", 1 << 20, "any", "/s");
  EXPECT_EQ(why(wide), "");
  const json listed = s.agents();
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[1]["gpus"].size(), 8u);
  EXPECT_EQ(listed[3]["gpus"], "any");
  EXPECT_TRUE(listed[0]["live"].get<bool>());
}

}  // namespace
}  // namespace recur::coord
