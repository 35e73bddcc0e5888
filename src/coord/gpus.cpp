// See gpus.h.
#include "coord/gpus.h"

#include <cstdlib>
#include <set>

#include "core/error.h"
#include "core/process.h"

namespace recur::coord {

using nlohmann::json;

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// A whole non-negative decimal number, or -1.
int64_t whole_number(const std::string& s) {
  if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(s);
}

void check_unique(const std::vector<Gpu>& gpus, const std::string& where) {
  std::set<int> seen;
  for (const auto& g : gpus) {
    if (!seen.insert(g.index).second) fail("{}: GPU {} is listed twice", where, g.index);
  }
}

}  // namespace

std::vector<Gpu> parse_nvidia_smi(const std::string& csv, const std::string& where) {
  std::vector<Gpu> out;
  size_t b = 0;
  for (int line_no = 1; b < csv.size(); ++line_no) {
    size_t e = csv.find('\n', b);
    if (e == std::string::npos) e = csv.size();
    const std::string line = trim(csv.substr(b, e - b));
    b = e + 1;
    if (line.empty()) continue;
    // The model name may hold commas of its own: the index is before the first, the memory after the last.
    const size_t first = line.find(','), last = line.rfind(',');
    const int64_t index = first == std::string::npos ? -1 : whole_number(trim(line.substr(0, first)));
    const int64_t mib = last == first ? -1 : whole_number(trim(line.substr(last + 1)));
    if (index < 0 || mib < 0 || index > 1 << 20) fail("{}: line {} is not 'INDEX, NAME, MEMORY_MIB': '{}'", where, line_no, line);
    out.push_back({static_cast<int>(index), trim(line.substr(first + 1, last - first - 1)), mib});
  }
  check_unique(out, where);
  return out;
}

std::vector<Gpu> detect_gpus() {
  const ProcessResult r = run_process({"nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"});
  if (r.exit_code != 0) return {};  // 127: no nvidia-smi; anything else: no driver, no GPU
  std::vector<Gpu> all;
  try {
    all = parse_nvidia_smi(r.output, "nvidia-smi");
  } catch (const Error&) {
    return {};
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return visible ? restrict_to_visible(all, visible) : all;
}

std::vector<Gpu> restrict_to_visible(const std::vector<Gpu>& all, const std::string& visible) {
  std::vector<Gpu> out;
  size_t b = 0;
  while (b < visible.size()) {
    size_t e = visible.find(',', b);
    if (e == std::string::npos) e = visible.size();
    const std::string entry = trim(visible.substr(b, e - b));
    b = e + 1;
    if (entry.empty()) continue;
    const int64_t id = whole_number(entry);
    if (id < 0) {
      fail("CUDA_VISIBLE_DEVICES={}: '{}' is not a GPU id (UUIDs and MIG devices are not mapped); name the GPUs with --gpus",
           visible, entry);
    }
    for (const auto& g : all) {
      if (g.index == id) out.push_back(g);
    }
  }
  return out;
}

std::vector<Gpu> select_gpus(const std::vector<Gpu>& detected, const std::vector<int>& ids) {
  std::vector<Gpu> out;
  for (int id : ids) {
    if (id < 0) fail("--gpus: GPU ids are numbers from 0 (got {})", id);
    Gpu g;
    g.index = id;
    for (const auto& d : detected) {
      if (d.index == id) g = d;
    }
    out.push_back(g);
  }
  check_unique(out, "--gpus");
  return out;
}

json gpus_to_json(const std::vector<Gpu>& gpus) {
  json out = json::array();
  for (const auto& g : gpus) out.push_back({{"index", g.index}, {"name", g.name}, {"memory_mib", g.memory_mib}});
  return out;
}

std::vector<Gpu> gpus_from_json(const json& j, const std::string& where) {
  std::vector<Gpu> out;
  if (j.is_string()) {  // agents before GPU placement: "0,1"
    const std::string s = j.get<std::string>();
    size_t b = 0;
    while (b < s.size()) {
      size_t e = s.find(',', b);
      if (e == std::string::npos) e = s.size();
      const int64_t id = whole_number(trim(s.substr(b, e - b)));
      if (id < 0 || id > 1 << 20) fail("{}: '{}' is not a list of GPU ids", where, s);
      out.push_back({static_cast<int>(id), "", 0});
      b = e + 1;
    }
  } else if (j.is_array()) {
    for (const auto& g : j) {
      if (!g.is_object() || !g.contains("index") || !g["index"].is_number_integer() || g["index"].get<int64_t>() < 0 ||
          g["index"].get<int64_t>() > 1 << 20) {
        fail("{}: each GPU must be an object with a non-negative integer 'index' (got {})", where, g.dump());
      }
      Gpu x;
      x.index = g["index"].get<int>();
      if (g.contains("name") && g["name"].is_string()) x.name = g["name"].get<std::string>();
      if (g.contains("memory_mib") && g["memory_mib"].is_number_integer()) x.memory_mib = g["memory_mib"].get<int64_t>();
      out.push_back(x);
    }
  } else if (!j.is_null()) {
    fail("{}: GPUs must be a list of {{\"index\", \"name\", \"memory_mib\"}} objects (got {})", where, j.dump());
  }
  check_unique(out, where);
  return out;
}

std::string gpu_id_list(const std::vector<int>& ids) {
  std::string out;
  for (int g : ids) out += (out.empty() ? "" : ",") + std::to_string(g);
  return out;
}

}  // namespace recur::coord
