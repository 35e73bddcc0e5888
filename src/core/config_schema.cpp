// The one list of config keys Recur understands, with types, defaults and help.
// Keys are a user-facing contract: add keys freely, never rename or retype an existing one.
#include "core/config.h"

namespace recur {

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = {
      // --- data -------------------------------------------------------------------------------
      {"data.path", ValueType::kString, "null", "dataset directory written by `recur shard` or `recur gen`"},
      {"data.verify", ValueType::kBool, "true",
       "verify every shard's checksums before training (sizes are always checked)"},
      {"data.fraction", ValueType::kFloat, "1.0",
       "train only on the first fraction of the train split (data-scaling ablation)", {}, 1e-9, 1.0},
      {"data.prefetch", ValueType::kInt, "4", "batches prepared ahead by the background loader thread", {}, 1, 1024},
      // --- model ------------------------------------------------------------------------------
      {"model.type", ValueType::kString, "\"xl\"", "model family",
       {"transformer", "rsa_transformer", "xl", "rsa_xl", "tl_xl", "fl_xl", "brt", "rsa_brt", "r_transformer",
        "recurrent_transformer"}},
      // --- train ------------------------------------------------------------------------------
      {"train.steps", ValueType::kInt, "1000", "optimizer steps to run", {}, 0},
      {"train.batch_size", ValueType::kInt, "22", "global batch size (sequences per step, all ranks together)", {}, 1},
      {"train.tgt_len", ValueType::kInt, "512", "tokens per training segment (T)", {}, 1},
      {"train.seed", ValueType::kInt, "1", "seed for initialisation, dropout and the data sampler", {}, 0},
      {"train.log_every", ValueType::kInt, "10", "steps between progress lines and metrics.jsonl records", {}, 1},
  };
  return schema;
}

}  // namespace recur
