// A small strict command-line parser: declared options only, typed accessors, generated --help.
// Unknown options are UsageErrors that name the closest declared option; a stray KEY=VALUE is pointed at --set.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace recur::cli {

// The candidate nearest to `word` by edit distance, or "" when none is near enough to be a typo
// (at most max(2, a third of the word's length) edits): "rundir" -> "run-dir", "trian" -> "train".
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

class Args;

// What `recur COMMAND` with no or a wrong subcommand answers. With no subcommand, or options only,
// `args` parses argv first (so --help prints the usage and returns 0, an unknown option is named);
// then a UsageError lists the subcommands, and for a near miss ("verfy") suggests the closest.
// Returns 0 only after --help; otherwise throws.
int subcommand_error(const std::string& command, Args& args, const std::vector<std::string>& argv,
                     const std::vector<std::string>& subcommands);

class Args {
 public:
  Args(std::string usage, std::string description);

  Args& option(const std::string& name, const std::string& metavar, const std::string& help,
               std::optional<std::string> default_value = std::nullopt);
  Args& required(const std::string& name, const std::string& metavar, const std::string& help);
  // Takes one or more values (`--input a b c`, or the flag repeated).
  Args& list(const std::string& name, const std::string& metavar, const std::string& help, bool required = false);
  Args& flag(const std::string& name, const std::string& help);
  Args& positional(const std::string& name, const std::string& help, bool required = true);
  Args& epilog(const std::string& text);

  // Returns false when --help was given (help already printed to stdout).
  bool parse(const std::vector<std::string>& argv);
  std::string help() const;

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;
  std::vector<std::string> get_list(const std::string& name) const;
  bool get_flag(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  // A comma-separated list of numbers ("0.9,0.05,0.05"); a UsageError names the option otherwise.
  std::vector<double> get_double_list(const std::string& name) const;

 private:
  struct Spec {
    std::string name, metavar, help;
    std::optional<std::string> default_value;
    bool is_flag = false, is_list = false, is_required = false, is_positional = false;
  };
  const Spec* find(const std::string& name) const;
  std::string usage_, description_, epilog_;
  std::vector<Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace recur::cli
