// See flops.h.
#include "train/flops.h"

#include <torch/torch.h>

#include "core/config.h"
#include "model/model.h"

namespace recur::train {

FlopCount model_flops_per_token(model::LanguageModel& model, const Config& c, int64_t vocab) {
  FlopCount f;
  const std::string type = c.get_string("model.type");
  const int64_t d_model = c.get_int("model.d_model"), n_head = c.get_int("model.n_head");
  const int64_t d_head = c.get_int("model.d_head") > 0 ? c.get_int("model.d_head") : d_model / n_head;
  bool has_output = false;
  for (const auto& p : model.named_parameters()) {
    const auto& t = p.value();
    if (t.dim() < 2) continue;
    const std::string& name = p.key();
    // embedding lookups (token and position tables) are not matrix products
    if (name.find("emb") != std::string::npos || name.find("wpe") != std::string::npos) continue;
    if (name.find(".rem.") != std::string::npos || name.find("bias") != std::string::npos) continue;  // REMs, XL biases
    if (name.rfind("crit.", 0) == 0) continue;  // the (adaptive) softmax: counted below
    if (t.size(0) == vocab && t.size(-1) == d_model) has_output = true;
    f.dense_params += static_cast<double>(t.numel());
  }
  if (!has_output) {
    // The tied output layer; with adaptive softmax (model.cutoffs) its head only (shortlist + one logit per
    // tail cluster): a tail cluster scores only its own tokens, a data-dependent fraction.
    const auto cutoffs = c.get_int_list("model.cutoffs");
    const int64_t d_embed = c.get_int("model.d_embed") > 0 ? c.get_int("model.d_embed") : d_model;
    const bool projected = c.get_int("model.div_val") > 1 || d_embed != d_model;
    const int64_t rows = cutoffs.empty() ? vocab : cutoffs[0] + static_cast<int64_t>(cutoffs.size());
    f.dense_params += static_cast<double>(rows * d_embed + (projected ? d_model * d_embed : 0));
  }
  const bool xl = type == "xl" || type == "rsa_xl" || type == "tl_xl" || type == "fl_xl" || type == "brt" || type == "rsa_brt";
  const int64_t keys = c.get_int("train.tgt_len") + (xl ? c.get_int("model.mem_len") : 0);
  const int64_t products = xl ? 3 : 2;  // XL: content scores, position scores, weighted values
  f.attention = 2.0 * static_cast<double>(c.get_int("model.n_layer") * n_head * d_head * keys * products);
  f.forward = 2.0 * f.dense_params + f.attention;
  f.train = 3.0 * f.forward;
  return f;
}

double peak_tflops(const std::string& name, const std::string& precision) {
  // NVIDIA's datasheets, dense (no sparsity); SXM parts. tf32: fp32 matmuls with train.tf32 on.
  const int column = precision == "bf16" ? 0 : precision == "tf32" ? 1 : 2;
  auto pick = [column](double bf16, double tf32, double fp32) { return column == 0 ? bf16 : column == 1 ? tf32 : fp32; };
  if (name.find("H200") != std::string::npos || name.find("H100") != std::string::npos) return pick(989.4, 494.7, 66.9);
  if (name.find("A100") != std::string::npos) return pick(312.0, 156.0, 19.5);
  return 0.0;
}

}  // namespace recur::train

namespace recur::train {

nlohmann::json model_info(const Config& c, int64_t vocab) {
  auto model = model::make_model(c, vocab);
  nlohmann::json modules = nlohmann::json::object();
  int64_t total = 0, embedding = 0;
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const int64_t n = p.value().numel();
    const std::string top = name.substr(0, name.find('.'));
    modules[top] = modules.value(top, int64_t{0}) + n;
    total += n;
    // Embedding tables: the token embedding (also the tied output layer) and learned positions.
    const std::string leaf = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
    const bool table = top.find("emb") != std::string::npos || top == "encoder" || name.find("wte.") != std::string::npos ||
                       name.find("wpe.") != std::string::npos;
    if (table && leaf != "bias") embedding += n;
  }
  const FlopCount f = model_flops_per_token(*model, c, vocab);
  return {{"model", model->type()},
          {"vocab", vocab},
          {"parameters", total},
          {"modules", modules},
          {"non_embedding_parameters", total - embedding},
          {"flops_per_token", f.train},
          {"forward_flops_per_token", f.forward}};
}

}  // namespace recur::train
