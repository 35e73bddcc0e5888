// See args.h.
#include "cli/args.h"

#include "core/config.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "core/error.h"

namespace recur::cli {

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best_d <= std::max<size_t>(2, word.size() / 3) ? best : "";
}

int subcommand_error(const std::string& command, Args& args, const std::vector<std::string>& argv,
                     const std::vector<std::string>& subcommands) {
  std::string expected;
  for (size_t i = 0; i < subcommands.size(); ++i) {
    expected += (i == 0 ? "" : i + 1 == subcommands.size() ? " or " : ", ") + subcommands[i];
  }
  if (argv.empty() || argv[0].rfind("-", 0) == 0) {
    if (!args.parse(argv)) return 0;
    throw UsageError(fmt::format("expected {} after `recur {}`", expected, command));
  }
  const std::string near = closest(argv[0], subcommands);
  throw UsageError(fmt::format("unknown subcommand '{}' of `recur {}`{} (expected {})", argv[0], command,
                               near.empty() ? "" : "; did you mean " + near + "?", expected));
}

Args::Args(std::string usage, std::string description) : usage_(std::move(usage)), description_(std::move(description)) {}

Args& Args::option(const std::string& name, const std::string& metavar, const std::string& help,
                   std::optional<std::string> default_value) {
  Spec s;
  s.name = name, s.metavar = metavar, s.help = help, s.default_value = std::move(default_value);
  specs_.push_back(s);
  return *this;
}

Args& Args::required(const std::string& name, const std::string& metavar, const std::string& help) {
  option(name, metavar, help);
  specs_.back().is_required = true;
  return *this;
}

Args& Args::list(const std::string& name, const std::string& metavar, const std::string& help, bool required) {
  option(name, metavar, help);
  specs_.back().is_list = true;
  specs_.back().is_required = required;
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  option(name, "", help);
  specs_.back().is_flag = true;
  return *this;
}

Args& Args::positional(const std::string& name, const std::string& help, bool required) {
  option(name, name, help);
  specs_.back().is_positional = true;
  specs_.back().is_required = required;
  return *this;
}

Args& Args::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const Args::Spec* Args::find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string Args::help() const {
  std::string out = "usage: " + usage_ + "\n\n" + description_ + "\n";
  bool any_pos = false;
  for (const auto& s : specs_) any_pos |= s.is_positional;
  if (any_pos) {
    out += "\narguments:\n";
    for (const auto& s : specs_) {
      if (s.is_positional) out += fmt::format("  {:<26} {}\n", s.name, s.help);
    }
  }
  out += "\noptions:\n";
  for (const auto& s : specs_) {
    if (s.is_positional) continue;
    std::string left = "--" + s.name + (s.is_flag ? "" : " " + s.metavar + (s.is_list ? "..." : ""));
    std::string right = s.help;
    if (s.is_required) right += " (required)";
    if (s.default_value && !s.default_value->empty()) right += " [default: " + *s.default_value + "]";
    out += fmt::format("  {:<26} {}\n", left, right);
  }
  out += fmt::format("  {:<26} {}\n", "--help", "show this help and exit");
  if (!epilog_.empty()) out += "\n" + epilog_ + "\n";
  return out;
}

bool Args::parse(const std::vector<std::string>& argv) {
  size_t next_positional = 0;
  std::vector<const Spec*> positionals;
  for (const auto& s : specs_) {
    if (s.is_positional) positionals.push_back(&s);
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), inline_value;
      bool has_inline = false;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
      const Spec* s = find(name);
      if (!s || s->is_positional) {
        std::vector<std::string> names;
        for (const auto& c : specs_) {
          if (!c.is_positional) names.push_back(c.name);
        }
        const std::string near = closest(name, names);
        throw UsageError(fmt::format("unknown option --{}{}", name, near.empty() ? "" : "; did you mean --" + near + "?"));
      }
      if (s->is_flag) {
        if (has_inline) throw UsageError("--" + name + " takes no value");
        values_[name] = {"true"};
        continue;
      }
      std::vector<std::string>& v = values_[name];
      if (!s->is_list) v.clear();
      if (has_inline) {
        v.push_back(inline_value);
        continue;
      }
      size_t taken = 0;
      while (i + 1 < argv.size() && (argv[i + 1].rfind("--", 0) != 0 || argv[i + 1] == "--")) {
        v.push_back(argv[++i]);
        ++taken;
        if (!s->is_list) break;
      }
      if (taken == 0) throw UsageError("--" + name + " needs a value (" + s->metavar + ")");
      continue;
    }
    if (next_positional >= positionals.size()) {
      const bool setting = a.find('=') != std::string::npos && find("set") != nullptr;
      throw UsageError("unexpected argument '" + a + "'" + (setting ? "; use --set " + a : ""));
    }
    values_[positionals[next_positional++]->name] = {a};
  }
  for (const auto& s : specs_) {
    if (s.is_required && !values_.count(s.name)) {
      throw UsageError(s.is_positional ? "missing argument " + s.name : "missing required option --" + s.name);
    }
  }
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  const Spec* s = find(name);
  if (s && s->default_value) return *s->default_value;
  throw UsageError("missing option --" + name);
}

std::vector<std::string> Args::get_list(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool Args::get_flag(const std::string& name) const { return values_.count(name) > 0; }

int64_t Args::get_int(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (...) {
  }
  throw UsageError("--" + name + " expects an integer, got '" + v + "'");
}

double Args::get_double(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (...) {
  }
  throw UsageError("--" + name + " expects a number, got '" + v + "'");
}

std::vector<double> Args::get_double_list(const std::string& name) const {
  std::string text = get(name);
  std::vector<double> out;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      size_t used = 0;
      out.push_back(std::stod(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (...) {
      throw UsageError("--" + name + " expects comma-separated numbers like 1,4,16, got '" + text + "'");
    }
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace recur::cli
