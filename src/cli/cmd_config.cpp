// `recur config keys` and `recur config show`: the config schema and resolved configs, for users.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"

namespace recur::cli {

int cmd_config(const Argv& argv) {
  if (!argv.empty() && argv[0] == "keys") {
    Args args("recur config keys", "List every config key with its type, default and meaning.");
    if (!args.parse(Argv(argv.begin() + 1, argv.end()))) return 0;
    for (const auto& s : config_schema()) {
      std::string extra;
      if (!s.choices.empty()) {
        for (const auto& c : s.choices) extra += (extra.empty() ? " one of: " : ", ") + c;
      }
      std::printf("%-28s %-16s default %-10s %s%s\n", s.key.c_str(), value_type_name(s.type).c_str(), s.default_yaml.c_str(),
                  s.help.c_str(), extra.c_str());
    }
    return 0;
  }
  if (!argv.empty() && argv[0] == "show") {
    Args args("recur config show [--config FILE] [--set section.key=value]...",
              "Print the resolved config: the file (following `base:`), then every --set, then defaults.");
    args.option("config", "FILE", "YAML config").list("set", "KEY=VALUE", "override one key (YAML value syntax)");
    if (!args.parse(Argv(argv.begin() + 1, argv.end()))) return 0;
    Config c = args.has("config") ? Config::load(args.get("config"), args.get_list("set"))
                                  : Config::from_overrides(args.get_list("set"));
    std::fputs(c.to_yaml().c_str(), stdout);
    return 0;
  }
  Args args("recur config {keys,show} ...", "Inspect the config schema (`keys`) or a resolved config (`show`).");
  return subcommand_error("config", args, argv, {"keys", "show"});
}

}  // namespace recur::cli
