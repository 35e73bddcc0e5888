// Export of a trained run for other tools: model.safetensors or model.h5 (fp32, the documented
// parameter names) and config.json. Invariant: tensor names are exactly the model's named_parameters()
// and named_buffers(), the names of docs/models.md; python/recur_torch.py reads them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "core/config.h"

namespace recur::model {
class LanguageModel;
}

namespace recur::train {

enum class ExportFormat { kSafetensors, kH5 };

// A run directory's model as `recur eval` loads it: config.yaml, the dataset's vocabulary size, and
// model.pt on the CPU.
struct RunOnCpu {
  Config config;
  int64_t vocab_size = 0;
  std::shared_ptr<model::LanguageModel> model;
};
RunOnCpu load_run_on_cpu(const std::string& run_dir);

// Every parameter and buffer by name, as contiguous fp32 CPU tensors, sorted by name.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(model::LanguageModel& model);

// The safetensors file (header length, JSON header, tensor bytes) of fp32 tensors.
std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata);

// The resolved config as JSON text (sections of keys), plus vocab_size and model_type.
std::string config_json(const Config& config, int64_t vocab_size);

// Writes OUT/model.safetensors or OUT/model.h5, and OUT/config.json; returns the paths written.
std::vector<std::string> export_run(const std::string& run_dir, ExportFormat format, const std::string& out_dir);

}  // namespace recur::train
