// See checkpoint.h.
#include "checkpoint/checkpoint.h"

#include <dirent.h>
#include <unistd.h>

#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/version.h"
#include "data/h5.h"
#include "parallel/communicator.h"

namespace recur::checkpoint {
namespace {

using nlohmann::json;
// 1: the first format. 2: rank files may hold rng/cuda (the CUDA generator of a GPU rank); version 1
// checkpoints load unchanged. Rank files holding recurrent state without state_names (written before
// 2026-11-23, during version 1) are refused.
constexpr int kFormatVersion = 2;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string step_name(int64_t step) { return fmt::format("step-{:08d}", step); }

h5::ElemType elem(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return h5::ElemType::kF32;
    case torch::kFloat64: return h5::ElemType::kF64;
    case torch::kInt64: return h5::ElemType::kI64;
    case torch::kUInt8: return h5::ElemType::kU8;
    default: fail("checkpoint: unsupported dtype {}", std::string(c10::toString(t.scalar_type())));
  }
}

void write_tensor(hid_t f, const std::string& name, const torch::Tensor& t, const std::string& path) {
  auto c = t.detach().contiguous().cpu();
  std::vector<uint64_t> dims(c.sizes().begin(), c.sizes().end());
  h5::write_array(f, name, elem(c), dims, c.data_ptr(), path);
}

// Reads a dataset into `into` (shape and dtype must match).
void read_into(hid_t f, const std::string& name, torch::Tensor into, const std::string& path) {
  auto dims = h5::array_dims(f, name, path);
  std::vector<int64_t> want(into.sizes().begin(), into.sizes().end());
  std::vector<int64_t> got(dims.begin(), dims.end());
  if (want.empty()) want.push_back(1);
  if (got != want) fail("{}: '{}' has shape {}, the model expects {} (checkpoint from another model?)", path, name,
                        fmt::join(got, "x"), fmt::join(want, "x"));
  auto tmp = torch::empty(into.sizes(), into.options().device(torch::kCPU));
  h5::read_array(f, name, elem(tmp), tmp.data_ptr(), static_cast<uint64_t>(tmp.numel()), path);
  torch::NoGradGuard ng;
  into.copy_(tmp);
}

torch::Tensor read_tensor(hid_t f, const std::string& name, torch::ScalarType type, const std::string& path) {
  auto dims = h5::array_dims(f, name, path);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
  h5::read_array(f, name, elem(t), t.data_ptr(), static_cast<uint64_t>(t.numel()), path);
  return t;
}

std::string rank_file(int rank) { return fmt::format("rank-{:04d}.h5", rank); }

// Adam and AdamW keep the same per-parameter state (step, first and second moments).
template <typename ParamState>
void load_moments(torch::optim::Optimizer& opt, const torch::Tensor& p, hid_t f, const std::string& name,
                  const std::string& path) {
  if (!h5::has_object(f, name)) return;  // no state yet for this parameter
  auto s = std::make_unique<ParamState>();
  s->exp_avg(torch::zeros_like(p));
  s->exp_avg_sq(torch::zeros_like(p));
  read_into(f, name + "/exp_avg", s->exp_avg(), path);
  read_into(f, name + "/exp_avg_sq", s->exp_avg_sq(), path);
  s->step(read_tensor(f, name + "/step", torch::kInt64, path).item<int64_t>());
  opt.state()[p.unsafeGetTensorImpl()] = std::move(s);
}

// The device a model trains on: its parameters' (the CPU for a model without any).
torch::Device device_of(const torch::nn::Module& model) {
  auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// The default generator of a device through the device-generic API, so this file needs no CUDA headers.
at::Generator generator(const torch::Device& device) { return at::globalContext().defaultGenerator(device); }

torch::Tensor rng_state(const torch::Device& device) {
  at::Generator gen = generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator gen = generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// A fresh, deterministic seed for a rank whose saved random stream cannot be continued.
uint64_t fresh_seed(int64_t seed, int64_t step, int rank) {
  return static_cast<uint64_t>(seed) * 1000003 + static_cast<uint64_t>(step) + static_cast<uint64_t>(rank);
}

std::atomic<bool> g_stop{false};

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  // A second Ctrl-C (while the first one's checkpoint is being written) ends the process at once, as
  // an impatient user expects: SIGINT goes back to its default action and is raised again.
  sa.sa_handler = [](int sig) {
    if (sig == SIGINT && g_stop.load()) {
      std::signal(SIGINT, SIG_DFL);
      std::raise(SIGINT);
    }
    g_stop.store(true);
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() { return g_stop.load(); }

std::vector<std::string> config_changes(const std::string& saved_path, const Config& now) {
  if (!path_exists(saved_path)) return {};
  std::vector<std::string> out;
  try {
    const Config saved = Config::load(saved_path);
    for (const auto& key : saved.diff(now)) {
      out.push_back(fmt::format("{}: {} -> {}", key, saved.value_text(key), now.value_text(key)));
    }
  } catch (const std::exception& e) {
    out.push_back(fmt::format("{} could not be read to compare ({})", saved_path, e.what()));
  }
  return out;
}

void to_json(json& j, const Progress& p) {
  j = {{"step", p.step},
       {"tokens", p.tokens},
       {"loss", p.loss},
       {"window", {{"loss", p.window_loss}, {"positions", p.window_positions}, {"steps", p.window_steps}}},
       {"train_seconds", p.train_seconds}};
}

void from_json(const json& j, Progress& p) {
  p = Progress();
  p.step = j.value("step", p.step);
  p.tokens = j.value("tokens", p.tokens);
  p.loss = j.value("loss", p.loss);
  p.train_seconds = j.value("train_seconds", p.train_seconds);
  if (j.contains("window") && j["window"].is_object()) {
    const json& w = j["window"];
    p.window_loss = w.value("loss", p.window_loss);
    p.window_positions = w.value("positions", p.window_positions);
    p.window_steps = w.value("steps", p.window_steps);
  }
}

CheckpointOptions CheckpointOptions::from_config(const Config& config) {
  CheckpointOptions o;
  o.every_steps = config.get_int("checkpoint.every_steps");
  o.every_minutes = config.get_float("checkpoint.every_minutes");
  o.keep_last = config.get_int("checkpoint.keep_last");
  o.milestone_every = config.get_int("checkpoint.milestone_every");
  o.async = config.get_bool("checkpoint.async");
  o.model_type = config.get_string("model.type");
  o.seed = config.get_int("train.seed");
  std::string fp = read_file(expand_user(config.get_string("data.path")) + "/manifest.json");
  for (const char* k : {"train.batch_size", "train.tgt_len", "train.seed"}) fp += std::to_string(config.get_int(k));
  fp += std::to_string(config.get_float("data.fraction")) + config.get_string("train.sampler");
  o.data_fingerprint = checksum_bytes(fp.data(), fp.size());
  o.config_yaml = config.to_yaml();
  return o;
}

Checkpointer::Checkpointer(std::string run_dir, const Config& config, parallel::Communicator& comm)
    : run_dir_(std::move(run_dir)),
      root_(run_dir_ + "/checkpoints"),
      options_(CheckpointOptions::from_config(config)),
      comm_(comm),
      host_(comm.host_duplicate()),
      last_save_time_(now_s()) {
  if (comm_.rank() == 0) recover();
}

bool Checkpointer::due(int64_t step) const {
  if (options_.every_steps > 0 && step % options_.every_steps == 0) return true;
  return options_.every_minutes > 0 && now_s() - last_save_time_ >= 60.0 * options_.every_minutes;
}

// A host copy of everything one save writes, taken at a step boundary on the training thread.
struct Snapshot {
  Progress progress;
  int64_t first_row = 0, global_rows = 0, state_rows = 0;
  torch::Tensor rng, cuda_rng;  // cuda_rng: only when the model lives on a GPU
  int64_t cuda_device = -1;
  std::vector<std::pair<std::string, torch::Tensor>> state, params, moments;  // moments: rank 0 only
  // Async saves of a GPU model: the host copies were queued on a side stream into pinned buffers and are
  // complete once this event has happened (the writer waits for it, training does not).
  std::unique_ptr<c10::Event> copied;
};

namespace {

// `copy`: a host copy (async saves) — into `reuse` when it has the same shape and type, so repeated
// saves do not pay for fresh pages; otherwise host views of the live tensors (sync saves, which
// finish before training touches them again). A device tensor copied for an async save goes into pinned
// memory without waiting (on the current stream: snapshot() makes it a side stream), complete at
// Snapshot::copied.
torch::Tensor host(const torch::Tensor& t, bool copy, const torch::Tensor& reuse = {}) {
  auto d = t.detach();
  torch::NoGradGuard ng;
  const bool fits = reuse.defined() && reuse.sizes() == d.sizes() && reuse.scalar_type() == d.scalar_type();
  if (copy && !d.device().is_cpu()) {
    auto dst = fits ? reuse : at::empty(d.sizes(), d.options().device(torch::kCPU).pinned_memory(true));
    dst.copy_(d, /*non_blocking=*/true);
    return dst;
  }
  if (copy && fits) {
    reuse.copy_(d);
    return reuse;
  }
  if (!d.device().is_cpu()) return d.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true).contiguous();
  return copy ? d.clone(at::MemoryFormat::Contiguous) : d.contiguous();
}

// The tensor at `index` of a previous snapshot's list when it has the same name.
torch::Tensor reusable(const std::vector<std::pair<std::string, torch::Tensor>>* list, size_t index, const std::string& name) {
  if (!list || index >= list->size() || (*list)[index].first != name) return {};
  return (*list)[index].second;
}

template <typename ParamState>
bool snapshot_moments(torch::optim::Optimizer& opt, const torch::Tensor& p, const std::string& name, bool copy,
                      const std::vector<std::pair<std::string, torch::Tensor>>* old,
                      std::vector<std::pair<std::string, torch::Tensor>>* out) {
  auto it = opt.state().find(p.unsafeGetTensorImpl());
  if (it == opt.state().end()) return true;
  auto* s = dynamic_cast<ParamState*>(it->second.get());
  if (!s) return false;
  out->emplace_back(name + "/exp_avg", host(s->exp_avg(), copy, reusable(old, out->size(), name + "/exp_avg")));
  out->emplace_back(name + "/exp_avg_sq", host(s->exp_avg_sq(), copy, reusable(old, out->size(), name + "/exp_avg_sq")));
  out->emplace_back(name + "/step", torch::tensor({s->step()}, torch::kInt64));
  return true;
}

}  // namespace

std::shared_ptr<Snapshot> Checkpointer::snapshot(const SaveRequest& r, bool copy, const Snapshot* old) const {
  auto s = std::make_shared<Snapshot>();
  s->progress = r.progress;
  s->first_row = r.first_row;
  s->global_rows = r.global_rows;
  s->rng = rng_state(torch::kCPU);
  const torch::Device device = device_of(*r.model);
  if (device.is_cuda()) {  // dropout on a GPU draws from that device's generator
    s->cuda_rng = rng_state(device);
    s->cuda_device = device.index();
  }
  // Async saves on a GPU: the copies run on a side stream after everything queued so far, and the compute
  // stream waits for them (on the GPU, not the host) before the next step changes the parameters.
  std::optional<c10::Stream> compute, side;
  std::optional<c10::StreamGuard> on_side;
  if (copy && device.is_cuda()) {
    const auto* cuda = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    compute = cuda->getStream(device);
    side = cuda->getStreamFromGlobalPool(device, /*isHighPriority=*/false);
    c10::Event produced(c10::DeviceType::CUDA);
    produced.record(*compute);
    produced.block(*side);
    on_side.emplace(*side);
  }
  if (r.state && !r.state->empty()) {
    s->state_rows = r.state->tensors.begin()->second.size(0);
    for (const auto& [k, v] : r.state->tensors) s->state.emplace_back(k, host(v, copy));
  }
  if (comm_.rank() == 0) {
    const auto* old_params = old ? &old->params : nullptr;
    const auto* old_moments = old ? &old->moments : nullptr;
    for (const auto& p : r.model->named_parameters()) {
      s->params.emplace_back(p.key(), host(p.value(), copy, reusable(old_params, s->params.size(), p.key())));
    }
    for (const auto& b : r.model->named_buffers()) {
      s->params.emplace_back(b.key(), host(b.value(), copy, reusable(old_params, s->params.size(), b.key())));
    }
    for (const auto& p : r.model->named_parameters()) {
      if (!snapshot_moments<torch::optim::AdamParamState>(*r.optimizer, p.value(), p.key(), copy, old_moments, &s->moments) &&
          !snapshot_moments<torch::optim::AdamWParamState>(*r.optimizer, p.value(), p.key(), copy, old_moments, &s->moments)) {
        fail("checkpoint: unsupported optimizer state for {}", p.key());
      }
    }
  }
  if (side) {
    s->copied = std::make_unique<c10::Event>(c10::DeviceType::CUDA);
    s->copied->record(*side);
    s->copied->block(*compute);
  }
  return s;
}

std::string Checkpointer::save(const SaveRequest& r) {
  wait();  // at most one save in flight
  last_save_time_ = now_s();
  const std::string dir = root_ + "/" + step_name(r.progress.step);
  if (!options_.async) {
    write(*snapshot(r, /*copy=*/false));
    return dir;
  }
  // The previous snapshot is fully written (wait() above): its host buffers take this one's copy.
  auto snap = snapshot(r, /*copy=*/true, previous_.get());
  previous_ = snap;
  in_flight_ = std::async(std::launch::async, [this, snap]() {
    // This HDF5 is thread-safe, which makes its error settings per thread: h5::silence_errors() ran
    // once, on another thread, so without this a full disk prints HDF5's whole error stack from here.
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    write(*snap);
  });
  return dir;
}

void Checkpointer::wait() {
  if (!in_flight_.valid()) return;
  auto f = std::move(in_flight_);
  f.get();  // rethrows the background writer's error
}

void Checkpointer::poll() {
  if (in_flight_.valid() && in_flight_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) wait();
}

bool Checkpointer::saving() const {
  return in_flight_.valid() && in_flight_.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

Checkpointer::~Checkpointer() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::error("checkpoint save failed: {}", e.what());
  }
}

namespace {

// Writes named tensors into a new HDF5 file, checks its close and fsyncs it.
void write_tensor_file(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  auto f = h5::create_file(path);
  for (const auto& [k, v] : tensors) write_tensor(f.get(), k, v, path);
  h5::close_file(f, path);
  fsync_path(path);
}

// Checksums every file of a checkpoint directory into manifest.json, the commit marker.
void write_manifest(const std::string& dir, int64_t step) {
  json files = json::object();
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail("cannot list {}", dir);
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "manifest.json") continue;
    uint64_t size = 0;
    std::string sum = checksum_file(dir + "/" + name, &size);
    files[name] = {{"size", size}, {"checksum", sum}};
  }
  ::closedir(d);
  json manifest = {{"format", "recur-checkpoint"}, {"format_version", kFormatVersion}, {"step", step}, {"files", files}};
  write_file_atomic(dir + "/manifest.json", manifest.dump(2) + "\n");
  fsync_path(dir);
}

}  // namespace

void Checkpointer::write(const Snapshot& s) {
  if (s.copied) s.copied->synchronize();  // the pinned host copies of an async GPU save are complete
  parallel::Communicator& comm = *host_;
  const std::string tmp = root_ + "/" + step_name(s.progress.step) + ".tmp";
  if (comm.rank() == 0) {
    make_dirs(root_);
    remove_tree(tmp);
    make_dirs(tmp);
  }
  comm.barrier();
  write_rank_file(s, tmp);  // every rank in parallel
  if (comm.rank() == 0) write_rank0_files(s, tmp);
  comm.barrier();  // every rank's files are on disk before the commit
  if (comm.rank() == 0) {
    write_manifest(tmp, s.progress.step);
    commit(s.progress.step, tmp);
    prune();
  }
  comm.barrier();
}

// The rank's RNG (CPU, and its GPU's when it trains on one) and its rows of the recurrent state.
void Checkpointer::write_rank_file(const Snapshot& s, const std::string& dir) const {
  std::string path = dir + "/" + rank_file(host_->rank());
  auto f = h5::create_file(path);
  write_tensor(f.get(), "rng/cpu", s.rng, path);
  if (s.cuda_rng.defined()) {
    write_tensor(f.get(), "rng/cuda", s.cuda_rng, path);
    auto d = h5::open_dataset(f.get(), "rng/cuda", path);
    h5::write_attr_u64(d.get(), "device_index", static_cast<uint64_t>(s.cuda_device), path);
  }
  write_tensor(f.get(), "rows", torch::tensor({s.first_row, s.state_rows}, torch::kInt64), path);
  std::string names;
  for (const auto& [k, v] : s.state) {
    write_tensor(f.get(), "state/" + k, v, path);
    names += k + "\n";
  }
  if (!names.empty()) {  // which state tensors there are (XL memories, BRT states, ...)
    write_tensor(f.get(), "state_names",
                 torch::from_blob(names.data(), {static_cast<int64_t>(names.size())}, torch::kUInt8), path);
  }
  h5::close_file(f, path);
  fsync_path(path);
}

void Checkpointer::write_rank0_files(const Snapshot& s, const std::string& dir) const {
  write_tensor_file(dir + "/model.h5", s.params);
  write_tensor_file(dir + "/optimizer.h5", s.moments);
  json meta = s.progress;
  meta.update(json{{"format", "recur-checkpoint"},
                   {"format_version", kFormatVersion},
                   {"world_size", host_->world_size()},
                   {"global_rows", s.global_rows},
                   {"model", options_.model_type},
                   {"recur_version", version_string()},
                   {"data_fingerprint", options_.data_fingerprint},
                   {"config", options_.config_yaml}});
  write_file_atomic(dir + "/meta.json", meta.dump(2) + "\n");
}

// Renames `tmp`, sealed by its manifest, to step-XXXXXXXX; `latest` follows.
void Checkpointer::commit(int64_t step, const std::string& tmp) const {
  const std::string final_dir = root_ + "/" + step_name(step);
  // A re-save of the same step (after a resume) replaces the old directory only now, when the new
  // one is complete: move the old one aside, rename, then delete it.
  if (path_exists(final_dir)) {
    std::string old = final_dir + ".deleting";
    remove_tree(old);
    if (::rename(final_dir.c_str(), old.c_str()) != 0) fail("cannot replace {}: {}", final_dir, std::strerror(errno));
  }
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) fail("cannot commit checkpoint {}: {}", final_dir, std::strerror(errno));
  fsync_path(root_);
  write_file_atomic(root_ + "/latest", step_name(step) + "\n");
  remove_tree(final_dir + ".deleting");
}

// What a killed run can leave: step-N.deleting, a checkpoint being pruned (renamed, then partly
// deleted) or the old copy of a re-saved step; step-N.tmp, a save that never committed — or one
// killed between its manifest and its rename, which is complete. The complete ones are committed,
// the rest removed, so nothing outlives the run that was killed.
void Checkpointer::recover() const {
  std::vector<std::string> tmps, doomed;
  DIR* d = ::opendir(root_.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("step-", 0) != 0) continue;
    auto ends = [&](const std::string& suffix) {
      return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".tmp")) tmps.push_back(name);
    if (ends(".deleting")) doomed.push_back(name);
  }
  ::closedir(d);
  std::sort(tmps.begin(), tmps.end());
  for (const auto& name : tmps) {
    const std::string tmp = root_ + "/" + name, final_name = name.substr(0, name.size() - 4);
    const bool step_name_ok = final_name.size() == 13 && final_name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (step_name_ok && !path_exists(root_ + "/" + final_name) && path_exists(tmp + "/manifest.json") &&
        verify_checkpoint(tmp).empty()) {
      spdlog::info("{}: committing a complete checkpoint a killed run left uncommitted", tmp);
      commit(std::stoll(final_name.substr(5)), tmp);
    } else {
      spdlog::info("{}: removing an incomplete checkpoint", tmp);
      remove_tree(tmp);
    }
  }
  for (const auto& name : doomed) {
    if (!path_exists(root_ + "/" + name)) continue;  // a commit above finished it
    spdlog::info("{}/{}: finishing the deletion a killed run left halfway", root_, name);
    remove_tree(root_ + "/" + name);
  }
}

void Checkpointer::prune() {
  if (host_->rank() != 0) return;
  const int64_t keep = options_.keep_last, milestone = options_.milestone_every;
  auto all = list_checkpoints(run_dir_);
  int64_t excess = static_cast<int64_t>(all.size()) - keep;
  for (int64_t i = 0; i < excess; ++i) {
    const std::string& dir = all[static_cast<size_t>(i)];
    int64_t step = std::stoll(dir.substr(dir.size() - 8));
    if (milestone > 0 && step % milestone == 0) continue;  // milestones are never deleted
    // Rename first, so a crash halfway through the deletion never leaves a half-deleted step-XXXXXXXX.
    std::string doomed = dir + ".deleting";
    if (::rename(dir.c_str(), doomed.c_str()) == 0) remove_tree(doomed);
  }
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  std::string root = run_dir + "/checkpoints";
  DIR* d = ::opendir(root.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() == 13 && name.rfind("step-", 0) == 0 && name.find_first_not_of("0123456789", 5) == std::string::npos) {
      out.push_back(root + "/" + name);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

json read_meta(const std::string& dir) {
  std::string path = dir + "/meta.json";
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

std::vector<std::string> verify_checkpoint(const std::string& dir) {
  std::vector<std::string> problems;
  json manifest;
  try {
    manifest = json::parse(read_file(dir + "/manifest.json"));
  } catch (const std::exception& e) {
    return {fmt::format("{}: manifest.json is missing or unreadable (incomplete checkpoint?): {}", dir, e.what())};
  }
  if (manifest.value("format", "") != "recur-checkpoint" || !manifest.contains("files") || !manifest["files"].is_object()) {
    return {fmt::format("{}/manifest.json: not a Recur checkpoint manifest", dir)};
  }
  for (const auto& [name, info] : manifest["files"].items()) {
    std::string path = dir + "/" + name;
    try {
      if (!path_exists(path)) fail("{}: file is missing", path);
      uint64_t size = 0;
      std::string sum = checksum_file(path, &size);
      if (size != info.value("size", uint64_t{0})) fail("{}: {} bytes, the manifest says {} (truncated?)", path, size, info.value("size", uint64_t{0}));
      if (sum != info.value("checksum", "")) fail("{}: checksum {} does not match the manifest's {} (damaged file)", path, sum, info.value("checksum", ""));
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  for (const char* required : {"model.h5", "optimizer.h5", "meta.json"}) {
    if (!manifest["files"].contains(required)) problems.push_back(fmt::format("{}: manifest does not list {}", dir, required));
  }
  return problems;
}

std::string Checkpointer::resolve(const std::string& resume) {
  std::string chosen;
  if (resume == "never") return "";
  if (comm_.rank() == 0) {
    if (resume != "auto") {
      auto problems = verify_checkpoint(resume);
      if (!problems.empty()) fail("--resume {}: {}", resume, problems.front());
      chosen = resume;
    } else {
      auto all = list_checkpoints(run_dir_);
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        auto problems = verify_checkpoint(*it);
        if (problems.empty()) {
          chosen = *it;
          break;
        }
        spdlog::warn("skipping damaged checkpoint {}: {}", *it, problems.front());
      }
    }
    if (!chosen.empty()) {
      auto meta = read_meta(chosen);
      if (meta.value("data_fingerprint", "") != options_.data_fingerprint) {
        fail("{} was written for another dataset or batch layout (data.path, train.batch_size, train.tgt_len, "
             "train.seed, data.fraction or train.sampler changed); use --resume never to start over", chosen);
      }
      if (meta.value("model", "") != options_.model_type) {
        fail("{} holds a {} model, the config asks for {}", chosen, meta.value("model", "?"), options_.model_type);
      }
    }
  }
  // Every rank must agree on the choice: rank 0 broadcasts the step (-1 = none).
  int64_t step = chosen.empty() ? -1 : read_meta(chosen).value("step", int64_t{-1});
  auto t = torch::tensor({step}, torch::kInt64);
  host_->broadcast(t, 0);
  step = t.item<int64_t>();
  if (step < 0) return "";
  return resume == "auto" ? root_ + "/" + step_name(step) : resume;
}

Progress Checkpointer::load(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                            model::State* state, int64_t first_row, int64_t rows) {
  json meta = read_meta(dir);
  const Progress p = meta.get<Progress>();
  const int saved_world = meta.value("world_size", 1);
  if (meta.value("format_version", 1) > kFormatVersion) {
    fail("{}/meta.json: checkpoint format version {}, this Recur reads up to {} (written by a newer Recur?)", dir,
         meta.value("format_version", 1), kFormatVersion);
  }
  {
    std::string path = dir + "/model.h5";
    auto f = h5::open_file(path, false);
    for (auto& item : model.named_parameters()) read_into(f.get(), item.key(), item.value(), path);
    for (auto& item : model.named_buffers()) read_into(f.get(), item.key(), item.value(), path);
  }
  {
    std::string path = dir + "/optimizer.h5";
    auto f = h5::open_file(path, false);
    bool adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer) != nullptr;
    for (const auto& item : model.named_parameters()) {
      if (adamw) load_moments<torch::optim::AdamWParamState>(optimizer, item.value(), f.get(), item.key(), path);
      else load_moments<torch::optim::AdamParamState>(optimizer, item.value(), f.get(), item.key(), path);
    }
  }
  // RNG: the same rank's streams (CPU, and CUDA for a GPU model) when the world size is unchanged;
  // otherwise, or for a stream the checkpoint lacks, a fresh, deterministic one.
  const torch::Device device = device_of(model);
  const uint64_t fresh = fresh_seed(options_.seed, p.step, comm_.rank());
  if (saved_world == comm_.world_size()) {
    std::string path = dir + "/" + rank_file(comm_.rank());
    auto f = h5::open_file(path, false);
    set_rng_state(torch::kCPU, read_tensor(f.get(), "rng/cpu", torch::kUInt8, path));
    const bool saved_cuda = h5::has_object(f.get(), "rng/cuda");  // absent: trained on the CPU, or format 1
    if (device.is_cuda() && saved_cuda) {
      set_rng_state(device, read_tensor(f.get(), "rng/cuda", torch::kUInt8, path));
    } else if (device.is_cuda()) {
      at::Generator gen = generator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(fresh);
      if (comm_.rank() == 0) spdlog::info("{} holds no CUDA random state (trained on the CPU): the GPU's generator is seeded afresh", dir);
    } else if (saved_cuda && comm_.rank() == 0) {
      spdlog::info("{} was trained on GPUs: resuming on the CPU continues the CPU random streams, not the CUDA ones", dir);
    }
  } else {
    torch::manual_seed(fresh);  // the CPU's and every GPU's generator
  }
  // Recurrent state by global stream: gather the rows [first_row, first_row + rows) from whichever rank
  // files hold them (any world size wrote them).
  if (state) {
    state->tensors.clear();
    std::map<std::string, std::vector<std::pair<int64_t, torch::Tensor>>> pieces;
    for (int r = 0; r < saved_world; ++r) {
      std::string path = dir + "/" + rank_file(r);
      auto f = h5::open_file(path, false);
      auto span = read_tensor(f.get(), "rows", torch::kInt64, path);
      int64_t begin = span[0].item<int64_t>(), n = span[1].item<int64_t>();
      int64_t lo = std::max(begin, first_row), hi = std::min(begin + n, first_row + rows);
      if (n == 0 || lo >= hi || !h5::has_object(f.get(), "state")) continue;
      if (!h5::has_object(f.get(), "state_names")) {
        fail("{}: recurrent state without state_names, written by a Recur of before 2026-11-23 that this one does "
             "not read; resume with --resume never", path);
      }
      std::vector<std::string> names;
      auto raw = read_tensor(f.get(), "state_names", torch::kUInt8, path);
      std::string all(reinterpret_cast<const char*>(raw.data_ptr<uint8_t>()), static_cast<size_t>(raw.numel()));
      for (size_t start = 0, nl; start < all.size(); start = nl + 1) {
        nl = all.find('\n', start);
        if (nl == std::string::npos) fail("{}: malformed state_names", path);
        names.push_back(all.substr(start, nl - start));
      }
      for (const auto& name : names) {
        if (!h5::has_object(f.get(), "state/" + name)) fail("{}: state tensor {} is listed but missing", path, name);
        auto t = read_tensor(f.get(), "state/" + name, torch::kFloat32, path);
        pieces[name].push_back({lo, t.slice(0, lo - begin, hi - begin)});
      }
    }
    for (auto& [name, parts] : pieces) {
      std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<torch::Tensor> ts;
      for (auto& pr : parts) ts.push_back(pr.second);
      auto all = torch::cat(ts, 0);
      if (all.size(0) != rows) fail("{}: recurrent state covers {} of this rank's {} streams", dir, all.size(0), rows);
      state->tensors[name] = all;
    }
  }
  return p;
}

}  // namespace recur::checkpoint
