// An agent's GPUs (id, model, memory): detected with nvidia-smi or named by `recur agent --gpus`, and
// advertised to the coordinator as JSON ([{"index": 0, "name": "...", "memory_mib": 81559}, ...]).
// Invariant: ids are unique within one inventory; a trial's CUDA_VISIBLE_DEVICES is a subset of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur::coord {

struct Gpu {
  int index = 0;           // the id CUDA_VISIBLE_DEVICES names
  std::string name;        // model, e.g. "NVIDIA H100 80GB HBM3"; empty when not detected
  int64_t memory_mib = 0;  // 0 when not detected
};

// `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` output; throws
// recur::Error naming `where` and the line when a line is not "INDEX, NAME, MIB".
std::vector<Gpu> parse_nvidia_smi(const std::string& csv, const std::string& where);

// This machine's GPUs from nvidia-smi (run with an argument vector); none when it is absent or fails.
// A process already limited to some GPUs (CUDA_VISIBLE_DEVICES in its environment, as Slurm sets it
// for a job) gets only those: restrict_to_visible below.
std::vector<Gpu> detect_gpus();

// The GPUs of `all` that `visible` (a CUDA_VISIBLE_DEVICES value: ids, "" for none) names, in its
// order. Throws recur::Error for entries that are not ids (UUIDs, MIG devices): give --gpus then.
std::vector<Gpu> restrict_to_visible(const std::vector<Gpu>& all, const std::string& visible);

// `--gpus 0,1`: those ids, each with the detected model and memory where `detected` has it.
std::vector<Gpu> select_gpus(const std::vector<Gpu>& detected, const std::vector<int>& ids);

nlohmann::json gpus_to_json(const std::vector<Gpu>& gpus);
// The JSON above; also what agents before GPU placement sent: "" (none) or "0,1" (ids). Throws
// recur::Error naming `where` on anything else, a negative id or a repeated id.
std::vector<Gpu> gpus_from_json(const nlohmann::json& j, const std::string& where);

// "0,1,3": the form CUDA_VISIBLE_DEVICES takes.
std::string gpu_id_list(const std::vector<int>& ids);

}  // namespace recur::coord
