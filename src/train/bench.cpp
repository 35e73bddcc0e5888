// See bench.h. Timings are medians over repeats after warm-up; inputs are random tokens.
#include "train/bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "core/config.h"
#include "core/error.h"
#include "model/model.h"

namespace recur::train {
namespace {

struct Timing {
  double median_ms;
  int64_t parameters;
};

Timing time_model(const Config& c, const StepBenchOptions& o) {
  auto model = model::make_model(c, o.vocab);
  const int64_t B = c.get_int("train.batch_size"), T = c.get_int("train.tgt_len");
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-4));
  model->train();
  torch::manual_seed(0);
  auto tokens = torch::randint(o.vocab, {B, T + 1}, torch::kInt64);
  model::State state;
  if (model->carries_state()) state = model->forward(tokens.slice(1, 0, T), state).state;  // full memory
  std::vector<double> ms;
  for (int64_t i = 0; i < o.warmup + o.repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = model->forward(tokens.slice(1, 0, T), state);
    auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, o.vocab}), tokens.slice(1, 1).reshape({-1}));
    loss.backward();
    opt.step();
    opt.zero_grad();
    double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= o.warmup) ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], model::count_parameters(*model)};
}

}  // namespace

nlohmann::json bench_step(const Config& c, const StepBenchOptions& o) {
  if (c.get_int("train.threads") > 0) torch::set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const int64_t B = c.get_int("train.batch_size"), T = c.get_int("train.tgt_len");
  Timing t = time_model(c, o);
  nlohmann::json j = {{"bench", "step"},
                      {"model", c.get_string("model.type")},
                      {"parameters", t.parameters},
                      {"batch_size", B},
                      {"tgt_len", T},
                      {"mem_len", c.get_int("model.mem_len")},
                      {"threads", torch::get_num_threads()},
                      {"ms_per_step", t.median_ms},
                      {"tokens_per_s", static_cast<double>(B * T) / (t.median_ms / 1000.0)}};
  const std::string type = c.get_string("model.type");
  std::string plain = type == "rsa_transformer" ? "transformer" : (type == "rsa_xl" || type == "tl_xl" || type == "fl_xl") ? "xl" : "";
  if (o.compare_plain && !plain.empty()) {
    Config base = c;
    base.set("model.type", "\"" + plain + "\"");
    base.set("model.n_rsa_heads", "0");
    Timing p = time_model(base, o);
    j["plain_ms_per_step"] = p.median_ms;
    j["rem_share"] = (t.median_ms - p.median_ms) / t.median_ms;
  }
  return j;
}

}  // namespace recur::train
