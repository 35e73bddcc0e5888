// The subcommands of `recur`; each takes the arguments after its own name and returns an exit code.
#pragma once

#include <string>
#include <vector>

namespace recur::cli {

using Argv = std::vector<std::string>;

int cmd_shard(const Argv& args);
int cmd_gen(const Argv& args);
int cmd_config(const Argv& args);
int cmd_bench(const Argv& args);
int cmd_train(const Argv& args);
int cmd_eval(const Argv& args);
int cmd_sample(const Argv& args);
int cmd_ckpt(const Argv& args);
int cmd_coordinator(const Argv& args);
int cmd_sweep(const Argv& args);
int cmd_agent(const Argv& args);
int cmd_model(const Argv& args);
int cmd_export(const Argv& args);

}  // namespace recur::cli
