// See export.h. safetensors is written here (no dependency): an 8-byte little-endian header length,
// the JSON header padded with spaces to 8 bytes, then every tensor's little-endian bytes in header order.
#include "train/export.h"

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "data/h5.h"
#include "model/model.h"

namespace recur::train {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors and model.h5 are written from host bytes");

// A YAML scalar as the JSON value it means: null, a boolean, an integer, a number, else a string.
nlohmann::json scalar_json(const std::string& s) {
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (s == "true") return true;
  if (s == "false") return false;
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return i;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (errno == 0 && end && *end == '\0') return d;
  return s;
}

nlohmann::json yaml_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_json(kv.second);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) out.push_back(yaml_json(item));
    return out;
  }
  if (node.IsScalar()) return node.Tag() == "!" ? nlohmann::json(node.Scalar()) : scalar_json(node.Scalar());
  return nullptr;
}

void write_h5(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& path) {
  h5::silence_errors();
  h5::Handle file = h5::create_file(path);
  for (const auto& [name, t] : tensors) {
    std::vector<uint64_t> dims(t.sizes().begin(), t.sizes().end());
    h5::write_array(file.get(), name, h5::ElemType::kF32, dims, t.data_ptr<float>(), path);
  }
  h5::close_file(file, path);
}

}  // namespace

RunOnCpu load_run_on_cpu(const std::string& run_dir) {
  const std::string cfg = run_dir + "/config.yaml";
  if (!path_exists(cfg)) fail("{} is not a run directory: {} is missing", run_dir, cfg);
  RunOnCpu run{Config::load(cfg), 0, nullptr};
  const std::string data = run.config.has("data.path") ? run.config.get_string("data.path") : "";
  if (run.config.get_int("model.vocab_size") > 0) {
    run.vocab_size = run.config.get_int("model.vocab_size");
  } else if (!data.empty() && path_exists(data + "/manifest.json")) {
    run.vocab_size = static_cast<int64_t>(data::Dataset::open(data, /*verify_checksums=*/false)->manifest().vocab.size);
  } else {
    fail("{}: no vocabulary size: model.vocab_size is 0 and data.path ({}) has no manifest.json", cfg, data);
  }
  run.model = model::make_model(run.config, run.vocab_size);
  const std::string params = run_dir + "/model.pt";
  if (!path_exists(params)) fail("{} has no trained parameters ({} is missing)", run_dir, params);
  try {
    torch::load(run.model, params, torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    fail("cannot load {}: {}", params, e.what_without_backtrace());
  }
  run.model->eval();
  return run;
}

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(model::LanguageModel& model) {
  std::map<std::string, torch::Tensor> byname;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) byname[p.key()] = p.value();
  for (const auto& b : model.named_buffers(/*recurse=*/true)) byname[b.key()] = b.value();
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, t] : byname) out.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
  return out;
}

std::string safetensors_bytes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = metadata;
  // nlohmann orders keys by name; the data follows that order so that the offsets increase with it.
  std::map<std::string, const torch::Tensor*> sorted;
  for (const auto& [name, t] : tensors) {
    if (t.scalar_type() != torch::kFloat32 || !t.is_contiguous()) fail("safetensors export: {} is not contiguous fp32", name);
    if (name == "__metadata__" || !sorted.emplace(name, &t).second) fail("safetensors export: duplicate or reserved name {}", name);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t bytes = static_cast<uint64_t>(t->numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t->sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.reserve(8 + text.size() + offset);
  out += text;
  for (const auto& [name, t] : sorted) {
    out.append(static_cast<const char*>(t->data_ptr()), static_cast<size_t>(t->numel()) * sizeof(float));
  }
  return out;
}

std::string config_json(const Config& config, int64_t vocab_size) {
  nlohmann::json j = yaml_json(YAML::Load(config.to_yaml()));
  j["vocab_size"] = vocab_size;
  j["model_type"] = config.get_string("model.type");
  return j.dump(2) + "\n";
}

std::vector<std::string> export_run(const std::string& run_dir, ExportFormat format, const std::string& out_dir) {
  RunOnCpu run = load_run_on_cpu(run_dir);
  auto tensors = named_tensors(*run.model);
  if (!is_directory(out_dir)) fail("export: output directory {} does not exist", out_dir);
  std::vector<std::string> written;
  if (format == ExportFormat::kSafetensors) {
    const std::string path = out_dir + "/model.safetensors";
    write_file_atomic(path, safetensors_bytes(tensors, {{"format", "pt"},
                                                        {"model_type", run.config.get_string("model.type")},
                                                        {"vocab_size", std::to_string(run.vocab_size)}}));
    written.push_back(path);
  } else {
    const std::string path = out_dir + "/model.h5", tmp = path + ".tmp." + std::to_string(::getpid());
    try {
      write_h5(tensors, tmp);
      fsync_path(tmp);
    } catch (...) {
      std::remove(tmp.c_str());
      throw;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
    written.push_back(path);
  }
  const std::string cfg = out_dir + "/config.json";
  write_file_atomic(cfg, config_json(run.config, run.vocab_size));
  written.push_back(cfg);
  return written;
}

}  // namespace recur::train
