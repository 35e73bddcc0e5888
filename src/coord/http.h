// The coordinator's HTTP + JSON service (Boost.Beast on one Asio thread) and a small blocking client.
// Every request carries the token (Authorization: Bearer T, or ?token=T for the web page); bodies are
// JSON and limited in size; errors are 4xx with {"error": "..."} and the service keeps serving.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur::coord {

struct ServerOptions {
  std::string listen = "127.0.0.1:8470";  // HOST:PORT; port 0 picks a free port
  std::string state;                       // FILE.db; the token lives in FILE.db.token (0600)
  double lease_seconds = 30;               // a trial whose agent sends no heartbeat for this long is requeued
  uint64_t body_limit = 1 << 20;
  std::string port_file;                   // if set, the bound port is written here once listening
  bool slurm = false;                      // run the Slurm executor beside the service
  std::string slurm_workdir, recur_root;
  std::vector<std::string> sbatch_args;
};

// Runs until SIGINT/SIGTERM. Creates the token file at first start.
int run_coordinator(const ServerOptions& options);

// Reads FILE.db.token, creating it (random, mode 0600) when absent.
std::string load_or_create_token(const std::string& state_path);

struct HttpResponse {
  int status = 0;
  nlohmann::json body;
};

// One request to the coordinator (URL http://HOST:PORT). Connection failures throw recur::Error.
HttpResponse http_request(const std::string& url, const std::string& method, const std::string& target,
                          const std::string& token, const std::string& body = "", double timeout_s = 30);

}  // namespace recur::coord
