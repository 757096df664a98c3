#include "eval/longbench.h"

#include "core/error.h"
#include "core/json_io.h"
#include "eval/metrics.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mlawb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<std::string> string_list(const json& v, const std::string& where, const char* field, bool null_ok) {
    std::vector<std::string> out;
    if (v.is_null() && null_ok) return out;
    if (!v.is_array()) throw Error(where, field, std::string("expected a list of strings, got ") + v.type_name());
    for (const json& s : v) {
        if (!s.is_string()) throw Error(where, field, std::string("expected strings, got ") + s.type_name());
        out.push_back(s.get<std::string>());
    }
    return out;
}

}  // namespace

LongBenchRecord parse_longbench_record(const std::string& text, const std::string& file, int64_t line) {
    const std::string where = file + ":" + std::to_string(line);
    const json j = parse_json_object_line(text, where);
    LongBenchRecord r;
    r.line = line;
    auto need_string = [&](const char* field, std::string& dst, bool required) {
        if (!j.contains(field) || j[field].is_null()) {
            if (required) throw Error(where, field, "missing");
            return;
        }
        if (!j[field].is_string()) throw Error(where, field, std::string("expected a string, got ") + j[field].type_name());
        dst = j[field].get<std::string>();
    };
    need_string("_id", r.id, true);
    need_string("input", r.input, true);
    need_string("context", r.context, true);
    need_string("dataset", r.dataset, false);
    need_string("language", r.language, false);
    if (!j.contains("answers")) throw Error(where, "answers", "missing");
    r.answers = string_list(j["answers"], where, "answers", false);
    if (j.contains("all_classes")) r.all_classes = string_list(j["all_classes"], where, "all_classes", true);
    if (j.contains("length") && !j["length"].is_null()) {
        // An unsigned value past int64 would wrap to a negative word count.
        const json& length = j["length"];
        const bool fits = length.is_number_integer() &&
                          !(length.is_number_unsigned() &&
                            length.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()));
        if (!fits)
            throw Error(where, "length", "expected an integer");
        r.length = length.get<int64_t>();
    }
    return r;
}

LongBenchTaskSet LongBenchTaskSet::open(const std::string& folder) {
    std::error_code error;
    if (!fs::is_directory(folder, error)) throw Error(folder, "", "not a task folder (no such directory)");
    LongBenchTaskSet t;
    t.folder_ = folder;
    for (const auto& [file, target] : {std::pair<const char*, int>{"dataset2prompt.json", 0}, {"dataset2maxlen.json", 1}}) {
        const std::string path = folder + "/" + file;
        json j = read_json_file(path);
        if (!j.is_object()) throw Error(path, "", "expected an object {dataset: ...}");
        for (const auto& [name, v] : j.items()) {
            if (target == 0) {
                if (!v.is_string()) throw Error(path, name, "expected a prompt template string");
                t.prompts_[name] = v.get<std::string>();
            } else {
                if (!v.is_number_integer() || v.get<int64_t>() <= 0) throw Error(path, name, "expected a positive integer");
                t.maxlen_[name] = v.get<int64_t>();
            }
        }
    }
    const std::string metric_path = folder + "/dataset2metric.json";
    if (fs::exists(metric_path, error)) {
        json j = read_json_file(metric_path);
        if (!j.is_object()) throw Error(metric_path, "", "expected an object {dataset: metric}");
        for (const auto& [name, v] : j.items()) {
            if (!v.is_string()) throw Error(metric_path, name, "expected a metric name");
            t.metrics_[name] = v.get<std::string>();
        }
    }
    // error_code forms: an unreadable folder is an Error naming it, not a filesystem_error.
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error))
        if (it->path().extension() == ".jsonl") t.datasets_.push_back(it->path().stem().string());
    if (error) throw Error(folder, "", "cannot list the task folder: " + error.message());
    std::sort(t.datasets_.begin(), t.datasets_.end());
    if (t.datasets_.empty()) throw Error(folder, "", "no <dataset>.jsonl files");
    return t;
}

const std::string& LongBenchTaskSet::prompt_template(const std::string& dataset) const {
    auto it = prompts_.find(dataset);
    if (it == prompts_.end()) throw Error(folder_ + "/dataset2prompt.json", dataset, "no prompt template for this dataset");
    return it->second;
}

int64_t LongBenchTaskSet::max_new_tokens(const std::string& dataset) const {
    auto it = maxlen_.find(dataset);
    if (it == maxlen_.end()) throw Error(folder_ + "/dataset2maxlen.json", dataset, "no maximum length for this dataset");
    return it->second;
}

std::string LongBenchTaskSet::metric_name(const std::string& dataset) const {
    auto it = metrics_.find(dataset);
    return it != metrics_.end() ? it->second : official_metric_name(dataset);
}

LongBenchDataset LongBenchTaskSet::load(const std::string& dataset, bool strict) const {
    LongBenchDataset d;
    d.name = dataset;
    d.file = folder_ + "/" + dataset + ".jsonl";
    std::ifstream in(d.file, std::ios::binary);
    if (!in) throw Error(d.file, "", "cannot open (dataset '" + dataset + "')");
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        try {
            d.records.push_back(parse_longbench_record(line, d.file, number));
        } catch (const Error& e) {
            if (strict) throw;
            d.malformed.push_back(e.what());
        }
    }
    return d;
}

std::string fill_prompt(const std::string& tmpl, const LongBenchRecord& r) {
    std::string out;
    out.reserve(tmpl.size() + r.context.size() + r.input.size());
    for (size_t i = 0; i < tmpl.size();) {
        if (tmpl.compare(i, 9, "{context}") == 0) {
            out += r.context;
            i += 9;
        } else if (tmpl.compare(i, 7, "{input}") == 0) {
            out += r.input;
            i += 7;
        } else if (tmpl.compare(i, 2, "{{") == 0 || tmpl.compare(i, 2, "}}") == 0) {
            out += tmpl[i];
            i += 2;
        } else {
            out += tmpl[i++];
        }
    }
    return out;
}

}  // namespace mlawb
