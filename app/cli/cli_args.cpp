#include "app/cli/cli_args.h"

#include "core/error.h"
#include "core/llama_model.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace mlawb::cli {

std::string ParsedArgs::value(const std::string& name, const std::string& fallback) const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
}

long long ParsedArgs::integer(const std::string& name, long long fallback, long long min, long long max) const {
    auto it = values.find(name);
    if (it == values.end()) return fallback;
    const std::string& text = it->second;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw Error("", name, "expected an integer, got '" + text + "'");
    if (v < min || v > max)
        throw Error("", name, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + text);
    return v;
}

ParsedArgs parse_args(const std::vector<std::string>& args, const OptionSpec& spec) {
    ParsedArgs out;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
            std::string name = a, value;
            bool inline_value = false;
            if (auto eq = a.find('='); eq != std::string::npos) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
                inline_value = true;
            }
            if (spec.flags.count(name)) {
                if (inline_value) throw Error("", name, "is a flag and takes no value");
                out.flags.insert(name);
            } else if (spec.valued.count(name)) {
                if (!inline_value) {
                    if (i + 1 >= args.size()) throw Error("", name, "needs a value");
                    value = args[++i];
                }
                out.values[name] = value;
            } else {
                std::string known;
                for (const auto& v : spec.valued) known += " " + v;
                for (const auto& f : spec.flags) known += " " + f;
                throw Error("", name, "unknown option; this command takes:" + (known.empty() ? std::string(" none") : known));
            }
        } else {
            out.positional.push_back(a);
        }
    }
    return out;
}

OptionSpec with_device_options(OptionSpec spec) {
    spec.valued.insert("--device");
    spec.valued.insert("--dtype");
    spec.valued.insert("--layer-split");
    return spec;
}

Placement placement_of(const ParsedArgs& args) {
    return parse_placement(args.value("--device", "cpu"), args.value("--dtype", "f32"), args.value("--layer-split"));
}

std::string device_option_text(const ParsedArgs& args) { return placement_of(args).to_string(); }

void apply_device_option(LoadedModel& model, const ParsedArgs& args) {
    const Placement where = placement_of(args);
    // A pipeline is always placed (layer by layer); one device only when it changes anything.
    if (where.pipelined() || model.model->placement().pipelined() || where.device != model.model->device() ||
        where.dtype != model.model->dtype())
        model.model->place(where);
}

void on_device_in_f32(LoadedModel& model, const ParsedArgs& args, const std::function<void()>& work) {
    Placement where = placement_of(args);
    bool all_cpu = true;
    for (const torch::Device& d : where.stage_devices()) all_cpu = all_cpu && d.is_cpu();
    if (all_cpu) {
        work();
        return;
    }
    where.dtype = torch::kFloat32;
    model.model->place(where);
    try {
        work();
    } catch (...) {
        model.model->place(Placement{});
        throw;
    }
    model.model->place(Placement{});
}

std::vector<std::string> split_list(const std::string& text, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, sep))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string host_name() {
    char buf[256] = {0};
    gethostname(buf, sizeof(buf) - 1);
    return buf;
}

std::string read_small_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace mlawb::cli
