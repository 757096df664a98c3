// Command-line parsing for mlawb: `mlawb COMMAND POSITIONAL... [--option VALUE] [--flag]`.
// Each command declares which options take values and which are flags, so `--json` never
// swallows the next word and unknown options are refused by name.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace mlawb::cli {

struct OptionSpec {
    std::set<std::string> valued;  // e.g. {"--window", "--prompt"}
    std::set<std::string> flags;   // e.g. {"--json"}
};

struct ParsedArgs {
    std::vector<std::string> positional;
    std::map<std::string, std::string> values;
    std::set<std::string> flags;

    bool flag(const std::string& name) const { return flags.count(name) > 0; }
    bool has(const std::string& name) const { return values.count(name) > 0; }
    std::string value(const std::string& name, const std::string& fallback = "") const;
    // Integer option; throws mlawb::Error naming the option when not an integer in [min, max].
    long long integer(const std::string& name, long long fallback, long long min, long long max) const;
};

// Parses args (after the command word). Accepts "--opt value" and "--opt=value".
// Throws mlawb::Error("", option, reason) for unknown options or missing values.
ParsedArgs parse_args(const std::vector<std::string>& args, const OptionSpec& spec);

}  // namespace mlawb::cli
