#include "app/cli/commands.h"

#include "core/error.h"

#include <torch/types.h>

#include <ATen/Parallel.h>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>

namespace mlawb::cli {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open text file");
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw Error(path, "", "read failed");
    return s.str();
}

void require_positional(const ParsedArgs& args, size_t count, const std::string& usage) {
    if (args.positional.size() != count)
        throw Error("", "arguments", "expected " + std::to_string(count) + " positional argument(s); usage: " + usage);
}

void apply_thread_option(const ParsedArgs& args) {
    // LibTorch's intra-op (OpenMP) threads. The default is left alone on purpose: with Debian's
    // LibTorch the matrix products run in OpenBLAS's own threads, and more OpenMP threads on
    // top oversubscribe the cores (measured on 2 cores: 4900 tok/s at 1 thread, 1700 at 2).
    if (args.has("--threads")) at::set_num_threads(static_cast<int>(args.integer("--threads", 0, 1, 1024)));
}

namespace {

std::vector<Command> all_commands() {
    std::vector<Command> commands;
    for (auto group : {model_commands, setting_commands, scores_commands, spectrum_commands, convert_commands,
                        score_commands, runs_commands, eval_commands, sweep_commands, recommend_commands,
                        finetune_commands})
        for (auto& c : group()) commands.push_back(std::move(c));
    return commands;
}

void print_help(std::ostream& out, const std::vector<Command>& commands) {
    out << "mlawb: MLA Workbench command line (MHA/GQA -> Multi-head Latent Attention)\n\nCommands:\n";
    for (const auto& c : commands) out << "  " << c.usage << "\n      " << c.summary << "\n";
    out << "\nErrors print one line naming the file and field, and exit with status 2.\n";
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    const std::vector<Command> commands = all_commands();
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        print_help(args.empty() ? err : out, commands);
        return args.empty() ? 2 : 0;
    }
    const Command* command = nullptr;
    for (const auto& c : commands)
        if (c.name == args[0]) command = &c;
    if (!command) {
        err << "error: unknown command '" << args[0] << "'; run 'mlawb help' for the list\n";
        return 2;
    }
    Io io{out, err};
    try {
        ParsedArgs parsed = parse_args(std::vector<std::string>(args.begin() + 1, args.end()), command->options);
        if (parsed.flag("--help")) {
            out << "usage: " << command->usage << "\n" << command->summary << "\n";
            return 0;
        }
        apply_thread_option(parsed);
        return command->run(parsed, io);
    } catch (const Error& e) {
        err << "error: " << e.what() << "\n";
    } catch (const Cancelled&) {
        err << "error: cancelled\n";
        return 130;
    } catch (const std::bad_alloc&) {
        err << "error: out of memory (" << command->name << "); try a smaller --window, --batch or model\n";
    } catch (const c10::Error& e) {
        // LibTorch errors carry a backtrace; its first line is the message.
        std::string msg = e.what_without_backtrace();
        err << "error: " << command->name << ": " << msg.substr(0, msg.find('\n')) << "\n";
    } catch (const std::exception& e) {
        err << "error: " << command->name << ": " << e.what() << "\n";
    }
    return 2;
}

}  // namespace mlawb::cli
