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

// One model with its optimizer, random tokens and a full memory, ready to time steps.
struct StepRunner {
  std::shared_ptr<model::LanguageModel> model;
  std::unique_ptr<torch::optim::Adam> opt;
  torch::Tensor tokens;
  model::State state;
  int64_t T, vocab;

  StepRunner(const Config& c, int64_t vocab_size) : vocab(vocab_size) {
    model = model::make_model(c, vocab);
    opt = std::make_unique<torch::optim::Adam>(model->parameters(), torch::optim::AdamOptions(1e-4));
    model->train();
    T = c.get_int("train.tgt_len");
    torch::manual_seed(0);
    tokens = torch::randint(vocab, {c.get_int("train.batch_size"), T + 1}, torch::kInt64);
    if (model->carries_state()) state = model->forward(tokens.slice(1, 0, T), state).state;  // full memory
  }
  double step_ms() {
    auto t0 = std::chrono::steady_clock::now();
    auto out = model->forward(tokens.slice(1, 0, T), state);
    auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, vocab}), tokens.slice(1, 1).reshape({-1}));
    loss.backward();
    opt->step();
    opt->zero_grad();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

nlohmann::json bench_step(const Config& c, const StepBenchOptions& o) {
  if (c.get_int("train.threads") > 0) torch::set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const int64_t B = c.get_int("train.batch_size"), T = c.get_int("train.tgt_len");
  const std::string type = c.get_string("model.type");
  std::string plain = type == "rsa_transformer" ? "transformer" : (type == "rsa_xl" || type == "tl_xl" || type == "fl_xl") ? "xl" : "";
  StepRunner main(c, o.vocab);
  std::unique_ptr<StepRunner> base;
  if (o.compare_plain && !plain.empty()) {
    Config b = c;
    b.set("model.type", "\"" + plain + "\"");
    b.set("model.n_rsa_heads", "0");
    base = std::make_unique<StepRunner>(b, o.vocab);
  }
  // Warm up, then alternate the two models step by step so that drift in machine speed hits both.
  std::vector<double> ms, plain_ms;
  for (int64_t i = 0; i < o.warmup + o.repeats; ++i) {
    double a = main.step_ms();
    double p = base ? base->step_ms() : 0.0;
    if (i >= o.warmup) {
      ms.push_back(a);
      plain_ms.push_back(p);
    }
  }
  double med = median(ms);
  nlohmann::json j = {{"bench", "step"},
                      {"model", type},
                      {"parameters", model::count_parameters(*main.model)},
                      {"batch_size", B},
                      {"tgt_len", T},
                      {"mem_len", c.get_int("model.mem_len")},
                      {"threads", torch::get_num_threads()},
                      {"ms_per_step", med},
                      {"tokens_per_s", static_cast<double>(B * T) / (med / 1000.0)}};
  if (base) {
    // The REM share from paired differences (each RSA step against the plain step next to it).
    std::vector<double> diff;
    for (size_t i = 0; i < ms.size(); ++i) diff.push_back(ms[i] - plain_ms[i]);
    j["plain_ms_per_step"] = median(plain_ms);
    j["rem_share"] = median(diff) / med;
  }
  return j;
}

}  // namespace recur::train
