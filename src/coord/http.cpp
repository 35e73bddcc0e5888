// See http.h. One io_context thread serves every connection; SQLite calls are short transactions.
#include "coord/http.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "coord/fit.h"
#include "coord/gpus.h"
#include "coord/page.h"
#include "coord/slurm_executor.h"
#include "coord/store.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur::coord {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

std::string load_or_create_token(const std::string& state_path) {
  const std::string path = state_path + ".token";
  if (path_exists(path)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      fail("{} is readable by others (mode {:o}); chmod 600 it", path, st.st_mode & 0777);
    }
    std::string t = read_file(path);
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t.empty()) fail("{} is empty; delete it to make a new token", path);
    return t;
  }
  std::random_device rd;
  std::string t;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 40; ++i) t += hex[rd() % 16];
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) fail("cannot create {}: {}", path, std::strerror(errno));
  std::string line = t + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) fail("cannot write {}", path);
  return t;
}

namespace {

struct ApiError {
  int status;
  std::string message;
};

[[noreturn]] void bad(int status, const std::string& msg) { throw ApiError{status, msg}; }

int64_t id_of(const std::string& s, const char* what) {
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos != s.size() || v < 0) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    bad(400, fmt::format("{} '{}' is not a number", what, s));
  }
}

json body_json(const std::string& body) {
  if (body.empty()) return json::object();
  try {
    json j = json::parse(body);
    if (!j.is_object()) bad(400, "the request body must be a JSON object");
    return j;
  } catch (const json::exception& e) {  // a syntax error, or a number out of range (1e400)
    bad(400, std::string("malformed JSON body: ") + e.what());
  }
}

template <typename T>
T field(const json& j, const char* name) {
  if (!j.contains(name)) bad(400, fmt::format("missing field '{}'", name));
  try {
    return j.at(name).get<T>();
  } catch (const json::exception&) {
    bad(400, fmt::format("field '{}' has the wrong type", name));
  }
}

template <typename T>
T field_or(const json& j, const char* name, T fallback) {
  return j.contains(name) ? field<T>(j, name) : fallback;
}

// No early exit: the time taken tells a guesser nothing about how much of the token was right.
bool tokens_equal(const std::string& given, const std::string& token) {
  unsigned char diff = given.size() != token.size() ? 1 : 0;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i % token.size()]);
  return diff == 0;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string query_param(const std::string& query, const std::string& key) {
  size_t i = 0;
  while (i < query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string::npos) j = query.size();
    std::string kv = query.substr(i, j - i);
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
    i = j + 1;
  }
  return "";
}

class Service {
 public:
  Service(const ServerOptions& o, std::string token) : o_(o), token_(std::move(token)), store_(o.state, o.lease_seconds) {}

  struct Reply {
    int status;
    std::string type, body;
    bool authenticated;  // the request carried the token
  };

  // The page alone takes ?token= (a browser cannot set a header on a link); the API takes only the
  // header, so the token does not end up in proxy and server logs. Client mistakes are 4xx; a failure
  // on this side (the state database) is 500.
  Reply handle(const http::request<http::string_body>& req) {
    std::string target(req.target());
    std::string query;
    if (auto q = target.find('?'); q != std::string::npos) {
      query = target.substr(q + 1);
      target = target.substr(0, q);
    }
    bool authenticated = false;
    try {
      const bool page = target == "/" && req.method() == http::verb::get;
      std::string auth(req[http::field::authorization]);
      std::string given = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : page ? query_param(query, "token") : "";
      if (given.empty()) bad(401, page ? "missing token (?token=TOKEN)" : "missing token (Authorization: Bearer TOKEN)");
      if (!tokens_equal(given, token_)) bad(403, "wrong token");
      authenticated = true;
      if (page) return {200, "text/html; charset=utf-8", page_html(), true};
      json out = route(req.method(), split_path(target), req.body(), query);
      return {200, "application/json", out.dump(), true};
    } catch (const ApiError& e) {
      return {e.status, "application/json", json{{"error", e.message}}.dump(), authenticated};
    } catch (const NotFound& e) {
      return {404, "application/json", json{{"error", e.what()}}.dump(), authenticated};
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", std::string(req.method_string()), target, e.what());
      return {500, "application/json", json{{"error", e.what()}}.dump(), authenticated};
    }
  }

  void expire() {
    try {
      int64_t n = store_.expire_leases(wall_now());
      if (n > 0) spdlog::warn("{} trial lease(s) expired: requeued", n);
    } catch (const std::exception& e) {
      spdlog::error("lease expiry: {}", e.what());
    }
  }

 private:
  json route(http::verb m, const std::vector<std::string>& p, const std::string& body, const std::string& query) {
    using V = http::verb;
    if (p.empty() || p[0] != "api") bad(404, "no such endpoint");
    if (p.size() == 2 && p[1] == "health" && m == V::get) return {{"ok", true}};
    if (p.size() == 2 && p[1] == "sweeps") {
      if (m == V::get) return store_.sweeps();
      if (m == V::post) {
        SweepSpec spec;
        try {
          spec = SweepSpec::from_json(body_json(body));
        } catch (const Error& e) {
          bad(400, e.what());
        }
        int64_t id = store_.create_sweep(spec);
        spdlog::info("sweep {} '{}': {} trials", id, spec.name, spec.trials.size());
        return {{"id", id}, {"trials", spec.trials.size()}};
      }
    }
    if (p.size() >= 3 && p[1] == "sweeps") {
      int64_t id = id_of(p[2], "sweep id");
      if (p.size() == 3 && m == V::get) return store_.sweep(id);
      if (p.size() == 4 && p[3] == "cancel" && m == V::post) {
        store_.cancel_sweep(id);
        return store_.sweep(id);
      }
      if (p.size() == 4 && p[3] == "results" && m == V::get) return results(id, query);
      if (p.size() == 4 && p[3] == "curves" && m == V::get) return store_.curves(Store::Scope::kSweep, id);
      if (p.size() == 4 && m == V::post && is_operation(p[3])) {
        operate(Store::Scope::kSweep, id, p[3], body);
        return store_.sweep(id);
      }
    }
    if (p.size() == 4 && p[1] == "trials" && p[3] == "curve" && m == V::get) {
      return store_.curves(Store::Scope::kTrial, id_of(p[2], "trial id"));
    }
    if (p.size() == 4 && p[1] == "trials" && m == V::post && is_operation(p[3])) {
      const int64_t trial = id_of(p[2], "trial id");
      operate(Store::Scope::kTrial, trial, p[3], body);
      return store_.trial(trial);
    }
    if (p.size() == 2 && p[1] == "agents" && m == V::get) return store_.agents();
    if (p.size() == 2 && p[1] == "agents" && m == V::post) {
      json j = body_json(body);
      int64_t slots = field<int64_t>(j, "slots");
      if (slots < 1) bad(400, "slots must be at least 1");
      const auto name = field<std::string>(j, "name");
      // The inventory: [{"index", "name", "memory_mib"}], or the "0,1" of agents before GPU placement.
      json gpus = field_or<json>(j, "gpus", json::array());
      std::vector<Gpu> inventory;
      try {
        inventory = gpus_from_json(gpus, "field 'gpus'");
      } catch (const Error& e) {
        bad(400, e.what());
      }
      int64_t id = store_.register_agent(name, slots, gpus_to_json(inventory), field<std::string>(j, "workdir"));
      spdlog::info("agent {} '{}' registered ({} slots, {} GPUs)", id, name, slots, inventory.size());
      return {{"id", id}, {"lease_seconds", o_.lease_seconds}};
    }
    if (p.size() == 4 && p[1] == "agents" && m == V::post) {
      int64_t agent = id_of(p[2], "agent id");
      if (p[3] == "lease") {
        json j = body_json(body);
        GpuOffer offer;
        const json free = field_or<json>(j, "free_gpus", json::array());
        if (!free.is_array()) bad(400, "field 'free_gpus' must be a list of GPU ids");
        for (const auto& g : free) {
          if (!g.is_number_integer() || g.get<int64_t>() < 0 || g.get<int64_t>() > 1 << 20) {
            bad(400, fmt::format("field 'free_gpus': {} is not a GPU id", g.dump()));
          }
          offer.free.push_back(g.get<int>());
        }
        return {{"trial", store_.lease(agent, field<int64_t>(j, "free_slots"), o_.lease_seconds, offer)}};
      }
      if (p[3] == "heartbeat") {
        store_.agent_seen(agent);
        return {{"ok", true}};
      }
    }
    if (p.size() == 4 && p[1] == "trials" && m == V::post) {
      int64_t trial = id_of(p[2], "trial id");
      json j = body_json(body);
      // progress (a heartbeat's, or a report's last one) is an object; a Slurm job id is digits
      auto progress_of = [&](const json& body) {
        const json progress = field_or<json>(body, "progress", json::object());
        if (!progress.is_object()) bad(400, "field 'progress' must be an object");
        if (progress.contains("slurm_job") && !(progress["slurm_job"].is_string() && is_slurm_job_id(progress["slurm_job"].get<std::string>()))) {
          bad(400, "progress.slurm_job must be a Slurm job id (digits)");
        }
        return progress;
      };
      if (p[3] == "heartbeat") {
        const json progress = progress_of(j);
        bool held = store_.heartbeat(trial, field<int64_t>(j, "agent"), field<int64_t>(j, "attempt"), progress, o_.lease_seconds);
        return {{"ok", held}, {"stop", !held}};
      }
      if (p[3] == "report") {
        const auto status = field<std::string>(j, "status");
        if (status != "succeeded" && status != "failed" && status != "requeue") {
          bad(400, fmt::format("status must be succeeded, failed or requeue (got '{}')", status));
        }
        // The trial's last progress (its final step and loss) ends its loss curve: a trial shorter
        // than a heartbeat interval still has its last point. Only while the attempt holds the lease.
        if (j.contains("progress")) {
          store_.heartbeat(trial, field<int64_t>(j, "agent"), field<int64_t>(j, "attempt"), progress_of(j), o_.lease_seconds);
        }
        return store_.report(trial, field<int64_t>(j, "agent"), field<int64_t>(j, "attempt"), status,
                             field_or<json>(j, "result", nullptr), field_or<std::string>(j, "error", ""));
      }
    }
    bad(404, "no such endpoint");
  }

  // ?fit=power[&x=auto|parameters|axis][&bootstrap=N] adds the fits `recur sweep results --fit power`
  // prints (for the page's plot). A sweep not fittable yet (too few sizes finished) still answers, with
  // the reason under fit_error. The bootstrap is capped: it runs on the thread that serves the agents.
  json results(int64_t id, const std::string& query) {
    json r = store_.results(id);
    const std::string fit = query_param(query, "fit");
    if (fit.empty()) return r;
    if (fit != "power") bad(400, "fit must be power");
    std::string x = query_param(query, "x");
    if (x.empty()) x = "auto";
    if (x != "auto" && x != "parameters" && x != "axis") bad(400, "x must be auto, parameters or axis");
    const std::string n = query_param(query, "bootstrap");
    const int64_t resamples = n.empty() ? 1000 : id_of(n, "bootstrap");
    if (resamples > 10000) bad(400, "bootstrap must be at most 10000");
    try {
      r["fit"] = fit_sweep(store_.sweep(id), x, resamples);
    } catch (const NotFound&) {
      throw;
    } catch (const Error& e) {
      r["fit_error"] = e.what();
    }
    return r;
  }

  // hold | release | priority ({"priority": N}) of a sweep's trials or of one trial.
  static bool is_operation(const std::string& op) { return op == "hold" || op == "release" || op == "priority"; }
  void operate(Store::Scope scope, int64_t id, const std::string& op, const std::string& body) {
    const char* what = scope == Store::Scope::kSweep ? "sweep" : "trial";
    if (op == "priority") {
      const json j = body_json(body);
      const auto priority = field<int64_t>(j, "priority");
      if (!j["priority"].is_number_integer()) bad(400, "field 'priority' must be an integer");
      const int64_t n = store_.set_priority(scope, id, priority);
      spdlog::info("{} {}: priority {} ({} trials)", what, id, priority, n);
      return;
    }
    const int64_t n = store_.set_held(scope, id, op == "hold");
    spdlog::info("{} {}: {} ({} trials)", what, id, op == "hold" ? "held" : "released", n);
  }

  ServerOptions o_;
  std::string token_;
  Store store_;
};

class Session;

// Connections that have not shown the token yet, oldest first. Past the cap the oldest is dropped, so
// idle strangers cannot take every descriptor and starve agents and health checks.
class Strangers {
 public:
  using List = std::list<std::weak_ptr<Session>>;
  explicit Strangers(size_t cap) : cap_(cap) {}
  List::iterator add(const std::shared_ptr<Session>& s);
  void remove(List::iterator it) { list_.erase(it); }
  void drop_oldest();

 private:
  size_t cap_;
  List list_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket s, Service& svc, Strangers& strangers, uint64_t limit)
      : stream_(std::move(s)), svc_(svc), strangers_(strangers), limit_(limit) {}
  ~Session() { leave_strangers(); }
  void start() {
    listed_ = strangers_.add(shared_from_this());
    read();
  }
  // Called by Strangers, which has already unlisted it.
  void drop() {
    listed_.reset();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

 private:
  void leave_strangers() {
    if (listed_) strangers_.remove(*listed_);
    listed_.reset();
  }
  void read() {
    parser_.emplace();
    parser_->body_limit(limit_);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(60));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }
  void on_read(beast::error_code ec) {
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;  // dropped
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset) return close();
    if (ec) {
      int status = ec == http::error::body_limit ? 413 : 400;
      std::string msg = ec == http::error::body_limit ? "request body too large" : "malformed HTTP request: " + ec.message();
      return reply(status, "application/json", json{{"error", msg}}.dump(), /*keep_alive=*/false, 11);
    }
    auto req = parser_->release();
    auto r = svc_.handle(req);
    if (r.authenticated) leave_strangers();
    reply(r.status, r.type, std::move(r.body), req.keep_alive(), req.version());
  }
  void reply(int status, const std::string& type, std::string body, bool keep_alive, unsigned version) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), version);
    res->set(http::field::server, "recur-coordinator");
    res->set(http::field::content_type, type);
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->close();
      self->read();
    });
  }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Service& svc_;
  Strangers& strangers_;
  std::optional<Strangers::List::iterator> listed_;
  uint64_t limit_;
};

Strangers::List::iterator Strangers::add(const std::shared_ptr<Session>& s) {
  auto it = list_.insert(list_.end(), s);
  while (list_.size() > cap_) drop_oldest();
  return it;
}

void Strangers::drop_oldest() {
  if (list_.empty()) return;
  auto s = list_.front().lock();
  list_.pop_front();
  if (s) s->drop();
}

// Half of what the descriptor limit leaves after the state files, the timers and the executor.
size_t stranger_cap() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 512;
  const int64_t spare = static_cast<int64_t>(rl.rlim_cur) - 48;
  return static_cast<size_t>(std::clamp<int64_t>(spare / 2, 4, 512));
}

// One coordinator per state file: two would lease the same trials twice. The lock (flock on
// STATE.lock, held for the process's life) goes when the process does, however it ends.
void lock_state(const std::string& state) {
  const std::string path = state + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot open the lock file {}: {}", path, std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder = read_file(path);
    while (!holder.empty() && holder.back() == '\n') holder.pop_back();
    ::close(fd);
    fail("{} is in use by another coordinator{} (lock {}); stop that one first", state,
         holder.empty() ? "" : " (pid " + holder + ")", path);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("cannot write the pid into {}: {}", path, std::strerror(errno));
  }
}

std::pair<std::string, uint16_t> host_port(const std::string& s, const char* what) {
  auto c = s.rfind(':');
  if (c == std::string::npos) fail("{} '{}' must be HOST:PORT", what, s);
  int port = 0;
  try {
    port = std::stoi(s.substr(c + 1));
  } catch (const std::exception&) {
    fail("{} '{}': the port is not a number", what, s);
  }
  if (port < 0 || port > 65535) fail("{} '{}': port out of range", what, s);
  return {s.substr(0, c), static_cast<uint16_t>(port)};
}

}  // namespace

int run_coordinator(const ServerOptions& o) {
  if (o.state.empty()) fail("--state FILE.db is required");
  lock_state(o.state);
  const std::string token = load_or_create_token(o.state);
  Service svc(o, token);
  Strangers strangers(stranger_cap());
  asio::io_context io(1);
  auto [host, port] = host_port(o.listen, "--listen");
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) fail("--listen {}: '{}' is not an IP address", o.listen, host);
  tcp::acceptor acceptor(io);
  tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(ep, ec);
  if (ec) fail("cannot listen on {}: {}", o.listen, ec.message());
  acceptor.listen();
  const uint16_t bound = acceptor.local_endpoint().port();
  if (!o.port_file.empty()) write_file_atomic(o.port_file, std::to_string(bound) + "\n");
  spdlog::info("coordinator listening on http://{}:{} (state {}, token in {}.token)", host, bound, o.state, o.state);
  // Out of descriptors, accept fails at once for as long as connections wait: without a pause that is
  // a busy loop. So an accept error waits a little; at EMFILE the oldest stranger is dropped, and the
  // reserve descriptor is freed to accept and close one waiting connection, so the queue moves.
  int reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  acceptor.non_blocking(true);
  asio::steady_timer backoff(io);
  auto last_warning = std::chrono::steady_clock::time_point{};
  std::function<void()> accept = [&]() {
    acceptor.async_accept([&](beast::error_code aec, tcp::socket s) {
      if (!acceptor.is_open()) return;
      if (!aec) {
        std::make_shared<Session>(std::move(s), svc, strangers, o.body_limit)->start();
        return accept();
      }
      if (aec == asio::error::no_descriptors || aec == boost::system::errc::too_many_files_open_in_system) {
        strangers.drop_oldest();
        if (reserve >= 0) {
          ::close(reserve);
          const int fd = ::accept(acceptor.native_handle(), nullptr, nullptr);
          if (fd >= 0) ::close(fd);
          reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
      }
      if (std::chrono::steady_clock::now() - last_warning > std::chrono::seconds(10)) {
        spdlog::warn("accept: {}; shedding idle connections", aec.message());
        last_warning = std::chrono::steady_clock::now();
      }
      backoff.expires_after(std::chrono::milliseconds(50));
      backoff.async_wait([&](beast::error_code) { accept(); });
    });
  };
  accept();
  asio::steady_timer timer(io);
  std::function<void()> tick = [&]() {
    timer.expires_after(std::chrono::milliseconds(500));
    timer.async_wait([&](beast::error_code tec) {
      if (tec) return;
      svc.expire();
      tick();
    });
  };
  tick();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int sig) {
    spdlog::info("coordinator: signal {}, stopping", sig);
    io.stop();
  });
  std::atomic<bool> stop{false};
  std::thread executor;
  if (o.slurm) {
    SlurmOptions so;
    so.state = o.state;
    so.workdir = o.slurm_workdir;
    so.recur_root = o.recur_root;
    so.sbatch_args = o.sbatch_args;
    executor = std::thread([so, &stop]() { run_slurm_executor(so, stop); });
  }
  io.run();
  if (reserve >= 0) ::close(reserve);
  stop = true;
  if (executor.joinable()) executor.join();
  return 0;
}

HttpResponse http_request(const std::string& url, const std::string& method, const std::string& target,
                          const std::string& token, const std::string& body, double timeout_s) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto [host, port] = host_port(rest, "coordinator URL");
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec) fail("cannot resolve coordinator {}: {}", url, ec.message());
  // Asynchronous steps, because only they honour the stream's deadline: a synchronous read waits
  // for ever on a coordinator that accepted the connection but never answers.
  const auto deadline = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  auto step = [&](auto start) {
    stream.expires_after(deadline);
    beast::error_code step_ec;
    start([&](beast::error_code e, auto&&...) { step_ec = e; });
    io.restart();
    io.run();
    return step_ec;
  };
  ec = step([&](auto done) { stream.async_connect(results, done); });
  if (ec) fail("cannot reach the coordinator at {}: {}", url, ec.message());
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, host);
  req.set(http::field::authorization, "Bearer " + token);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  // The server may answer early and close (e.g. 413 for an oversized body): read its answer anyway.
  const beast::error_code write_ec = step([&](auto done) { http::async_write(stream, req, done); });
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull << 20);
  ec = step([&](auto done) { http::async_read(stream, buf, parser, done); });
  if (ec && write_ec) fail("coordinator {}: sending {} {} failed: {}", url, method, target, write_ec.message());
  if (ec) fail("coordinator {}: no answer to {} {}: {}", url, method, target, ec.message());
  auto res = parser.release();
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  HttpResponse out;
  out.status = res.result_int();
  try {
    out.body = res.body().empty() ? json(nullptr) : json::parse(res.body());
  } catch (const json::exception&) {
    out.body = res.body();
  }
  return out;
}

}  // namespace recur::coord
