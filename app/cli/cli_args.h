// Command-line parsing for mlawb: `mlawb COMMAND POSITIONAL... [--option VALUE] [--flag]`.
// Each command declares which options take values and which are flags, so `--json` never
// swallows the next word and unknown options are refused by name.
#pragma once

#include <functional>
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

// --device cpu|cuda|cuda:N (or a comma list, one pipeline stage per device: cuda:0,cuda:1),
// --dtype f32|bf16|f16 and --layer-split N,M (layers per device; default balanced): where a model
// command computes and the dtype of weights and cache (default cpu f32). `spec` plus these three
// valued options.
OptionSpec with_device_options(OptionSpec spec);
// "cpu f32", "cuda:0 bf16", "cuda:0,cuda:1 bf16", ...; throws mlawb::Error("", "--device",
// "--dtype" or "--layer-split", ...) when the values are malformed or no CUDA device is there.
std::string device_option_text(const ParsedArgs& args);

// Small helpers the commands share.
std::vector<std::string> split_list(const std::string& text, char sep = ',');  // empty items dropped
std::string host_name();                                                        // recorded with each run
std::string read_small_file(const std::string& path);  // whole file; mlawb::Error(path, "", "cannot open")

}  // namespace mlawb::cli

namespace mlawb {
struct LoadedModel;
struct Placement;
}
namespace mlawb::cli {
// --device / --dtype / --layer-split parsed (parse_placement); the split is checked against the
// model's layers when placed.
Placement placement_of(const ParsedArgs& args);
// Moves a loaded (and, with --mla, converted) model to --device / --dtype / --layer-split.
void apply_device_option(LoadedModel& model, const ParsedArgs& args);
// Runs `work` with the model on --device (every stage of a list) in float32 (calibration forward
// passes), then puts it back on the CPU in float32 (where conversion runs); exact, as float32
// round-trips.
void on_device_in_f32(LoadedModel& model, const ParsedArgs& args, const std::function<void()>& work);
}  // namespace mlawb::cli
