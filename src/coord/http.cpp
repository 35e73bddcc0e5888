// See http.h. One io_context thread serves every connection; SQLite calls are short transactions.
#include "coord/http.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <csignal>
#include <thread>
#include <fstream>
#include <memory>
#include <random>

#include <spdlog/spdlog.h>

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
  } catch (const json::parse_error& e) {
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
  Service(const ServerOptions& o, std::string token) : o_(o), token_(std::move(token)), store_(o.state) {}

  // Returns (status, content type, body).
  std::tuple<int, std::string, std::string> handle(const http::request<http::string_body>& req) {
    std::string target(req.target());
    std::string query;
    if (auto q = target.find('?'); q != std::string::npos) {
      query = target.substr(q + 1);
      target = target.substr(0, q);
    }
    try {
      std::string auth(req[http::field::authorization]);
      std::string given = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : query_param(query, "token");
      if (given.empty()) bad(401, "missing token (Authorization: Bearer TOKEN)");
      if (given != token_) bad(403, "wrong token");
      if (target == "/" && req.method() == http::verb::get) return {200, "text/html; charset=utf-8", page_html()};
      json out = route(req.method(), split_path(target), query, req.body());
      return {200, "application/json", out.dump()};
    } catch (const ApiError& e) {
      return {e.status, "application/json", json{{"error", e.message}}.dump()};
    } catch (const NotFound& e) {
      return {404, "application/json", json{{"error", e.what()}}.dump()};
    } catch (const std::exception& e) {
      return {400, "application/json", json{{"error", e.what()}}.dump()};
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
  json route(http::verb m, const std::vector<std::string>& p, const std::string& query, const std::string& body) {
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
      if (p.size() == 4 && p[3] == "results" && m == V::get) return store_.results(id);
    }
    if (p.size() == 2 && p[1] == "agents" && m == V::post) {
      json j = body_json(body);
      int64_t slots = field<int64_t>(j, "slots");
      if (slots < 1) bad(400, "slots must be at least 1");
      int64_t id = store_.register_agent(field<std::string>(j, "name"), slots, j.value("gpus", ""), field<std::string>(j, "workdir"));
      spdlog::info("agent {} '{}' registered ({} slots)", id, j.value("name", ""), slots);
      return {{"id", id}, {"lease_seconds", o_.lease_seconds}};
    }
    if (p.size() == 4 && p[1] == "agents" && m == V::post) {
      int64_t agent = id_of(p[2], "agent id");
      if (p[3] == "lease") {
        json j = body_json(body);
        return {{"trial", store_.lease(agent, field<int64_t>(j, "free_slots"), o_.lease_seconds)}};
      }
      if (p[3] == "heartbeat") {
        store_.agent_seen(agent);
        return {{"ok", true}};
      }
    }
    if (p.size() == 4 && p[1] == "trials" && m == V::post) {
      int64_t trial = id_of(p[2], "trial id");
      json j = body_json(body);
      if (p[3] == "heartbeat") {
        bool held = store_.heartbeat(trial, field<int64_t>(j, "agent"), field<int64_t>(j, "attempt"),
                                     j.value("progress", json::object()), o_.lease_seconds);
        return {{"ok", held}, {"stop", !held}};
      }
      if (p[3] == "report") {
        return store_.report(trial, field<int64_t>(j, "agent"), field<int64_t>(j, "attempt"), field<std::string>(j, "status"),
                             j.value("result", json(nullptr)), j.value("error", ""));
      }
    }
    (void)query;
    bad(404, "no such endpoint");
  }

  ServerOptions o_;
  std::string token_;
  Store store_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket s, Service& svc, uint64_t limit) : stream_(std::move(s)), svc_(svc), limit_(limit) {}
  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(limit_);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(60));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset) return close();
    if (ec) {
      int status = ec == http::error::body_limit ? 413 : 400;
      std::string msg = ec == http::error::body_limit ? "request body too large" : "malformed HTTP request: " + ec.message();
      return reply(status, "application/json", json{{"error", msg}}.dump(), /*keep_alive=*/false, 11);
    }
    auto req = parser_->release();
    auto [status, type, body] = svc_.handle(req);
    reply(status, type, body, req.keep_alive(), req.version());
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
  uint64_t limit_;
};

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
  const std::string token = load_or_create_token(o.state);
  Service svc(o, token);
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
  std::function<void()> accept = [&]() {
    acceptor.async_accept([&](beast::error_code aec, tcp::socket s) {
      if (!aec) std::make_shared<Session>(std::move(s), svc, o.body_limit)->start();
      if (acceptor.is_open()) accept();
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
  stream.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  stream.connect(results, ec);
  if (ec) fail("cannot reach the coordinator at {}: {}", url, ec.message());
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, host);
  req.set(http::field::authorization, "Bearer " + token);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  // The server may answer early and close (e.g. 413 for an oversized body): read its answer anyway.
  const beast::error_code write_ec = ec;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256ull << 20);
  http::read(stream, buf, parser, ec);
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
