// The mlawb command registry. Every command parses its own options, prints plain text or
// (with --json) one JSON object on stdout, and progress on stderr. Errors are caught once,
// here at the boundary: one line "error: <file>: <field>: <reason>" and exit status 2.
#pragma once

#include "app/cli/cli_args.h"

#include "analysis/setting.h"

#include <functional>
#include <optional>
#include <iosfwd>
#include <string>
#include <vector>

namespace mlawb::cli {

struct Io {
    std::ostream& out;
    std::ostream& err;
};

struct Command {
    std::string name;
    std::string usage;    // "mlawb info MODEL [--json] [--config-only]"
    std::string summary;  // one line for `mlawb help`
    OptionSpec options;
    std::function<int(const ParsedArgs&, Io&)> run;
};

// Registration per concept file.
std::vector<Command> model_commands();     // commands_model.cpp: info, tokenize, generate, perplexity
std::vector<Command> setting_commands();   // commands_setting.cpp: strategy, memory
std::vector<Command> scores_commands();    // commands_scores.cpp: rope-scores
std::vector<Command> spectrum_commands();  // commands_spectrum.cpp: spectrum
std::vector<Command> convert_commands();   // commands_convert.cpp: convert
std::vector<Command> score_commands();     // commands_score.cpp: score
std::vector<Command> runs_commands();      // commands_runs.cpp: runs, compare, export
std::vector<Command> eval_commands();      // commands_eval.cpp: eval
std::vector<Command> sweep_commands();     // commands_sweep.cpp: sweep, merge
std::vector<Command> recommend_commands(); // commands_recommend.cpp: recommend
std::vector<Command> finetune_commands();  // commands_finetune.cpp: finetune

// Runs `mlawb ARGS...` (args without the program name); returns the exit status.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Shared helpers for command implementations.
std::string read_text_file(const std::string& path);           // throws Error naming the file
void require_positional(const ParsedArgs& args, size_t count, const std::string& usage);
void apply_thread_option(const ParsedArgs& args);              // --threads N
}  // namespace mlawb::cli
namespace mlawb {
struct LoadedModel;
}
namespace mlawb::cli {
// --mla SPEC: resolves the setting (scores from scores=FILE or calibrated from calib=FILE) and
// converts the loaded model in memory. nullopt without --mla.
std::optional<ResolvedSetting> apply_mla_option(LoadedModel& model, const ParsedArgs& args, Io& io);
// calib=FILE: calibrates 2-norm scores of `model` with the default windows, progress on stderr.
RopeScores calibrate_with_progress(LoadedModel& model, const std::string& calib_file, const std::string& variant, Io& io);
// The same for commands that have not loaded the model: loads `folder` when first called.
std::function<RopeScores(const std::string&)> folder_calibrator(const std::string& folder, const std::string& variant,
                                                                Io& io);

}  // namespace mlawb::cli
