// The mlawb command registry. Every command parses its own options, prints plain text or
// (with --json) one JSON object on stdout, and progress on stderr. Errors are caught once,
// here at the boundary: one line "error: <file>: <field>: <reason>" and exit status 2.
#pragma once

#include "app/cli/cli_args.h"

#include <functional>
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

// Registration per concept file (commands_model.cpp, ...).
std::vector<Command> model_commands();

// Runs `mlawb ARGS...` (args without the program name); returns the exit status.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Shared helpers for command implementations.
std::string read_text_file(const std::string& path);           // throws Error naming the file
void require_positional(const ParsedArgs& args, size_t count, const std::string& usage);
void apply_thread_option(const ParsedArgs& args);              // --threads N

}  // namespace mlawb::cli
