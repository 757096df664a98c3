#include "analysis/rope_scores.h"

#include "core/error.h"
#include "core/json_io.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

namespace mlawb {

using json = nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
    return out;
}

void require_variant(const std::string& variant, const std::string& source, const std::string& key) {
    const auto& valid = RopeScores::variant_names();
    if (std::find(valid.begin(), valid.end(), variant) == valid.end())
        throw Error(source, key, "unknown variant '" + variant + "'; valid values: " + join(valid));
}

// Reads a positive integer member of the top-level object.
int64_t read_dimension(const json& j, const char* key, const std::string& source) {
    if (!j.contains(key)) throw Error(source, key, "missing");
    const json& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 1) throw Error(source, key, "expected a positive integer");
    return v.get<int64_t>();
}

// Reads j[key], a [rows][cols][pairs] array of non-negative numbers, row-major into a vector.
// Errors name the innermost index at fault: "q_norms[2][1]: expected 32 numbers".
std::vector<double> read_cube(const json& j, const std::string& key, int64_t rows, int64_t cols, int64_t pairs,
                              const std::string& source) {
    if (!j.contains(key)) throw Error(source, key, "missing");
    const json& cube = j.at(key);
    if (!cube.is_array() || static_cast<int64_t>(cube.size()) != rows)
        throw Error(source, key, "expected an array of " + std::to_string(rows) + " layers");
    // No reserve from the declared sizes: they are outside input, checked against the arrays
    // as we go (a hostile n_pairs must not make us allocate before anything is verified).
    std::vector<double> out;
    for (int64_t l = 0; l < rows; ++l) {
        const std::string layer_key = key + "[" + std::to_string(l) + "]";
        const json& layer = cube[l];
        if (!layer.is_array() || static_cast<int64_t>(layer.size()) != cols)
            throw Error(source, layer_key, "expected an array of " + std::to_string(cols) + " heads");
        for (int64_t h = 0; h < cols; ++h) {
            const std::string head_key = layer_key + "[" + std::to_string(h) + "]";
            const json& head = layer[h];
            if (!head.is_array() || static_cast<int64_t>(head.size()) != pairs)
                throw Error(source, head_key, "expected " + std::to_string(pairs) + " numbers");
            for (int64_t k = 0; k < pairs; ++k) {
                const json& v = head[k];
                // Norms and their products or sums are never negative; NaN/inf cannot be JSON.
                if (!v.is_number() || !(v.get<double>() >= 0) || !std::isfinite(v.get<double>()))
                    throw Error(source, head_key + "[" + std::to_string(k) + "]", "expected a non-negative number");
                out.push_back(v.get<double>());
            }
        }
    }
    return out;
}

// A [rows][cols][pairs] array as JSON text, one head's pairs per line so the file stays
// readable (a plain indented dump puts every number on its own line).
std::string cube_text(const std::vector<double>& values, int64_t rows, int64_t cols, int64_t pairs) {
    std::string out = "[\n";
    for (int64_t l = 0; l < rows; ++l) {
        out += "  [\n";
        for (int64_t h = 0; h < cols; ++h) {
            const auto first = values.begin() + (l * cols + h) * pairs;
            // nlohmann writes the shortest text that reads back as the same double.
            out += "   " + json(std::vector<double>(first, first + pairs)).dump() + (h + 1 < cols ? ",\n" : "\n");
        }
        out += std::string("  ]") + (l + 1 < rows ? ",\n" : "\n");
    }
    return out + " ]";
}

std::string read_string(const json& object, const char* key, const std::string& source, const std::string& prefix) {
    if (!object.contains(key)) return "";
    if (!object.at(key).is_string()) throw Error(source, prefix + key, "expected a string");
    return object.at(key).get<std::string>();
}

int64_t read_count(const json& object, const char* key, const std::string& source, const std::string& prefix) {
    if (!object.contains(key)) return 0;
    const json& v = object.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
        throw Error(source, prefix + key, "expected a non-negative integer");
    return v.get<int64_t>();
}

}  // namespace

const std::vector<std::string>& RopeScores::variant_names() {
    static const std::vector<std::string> names{"product", "sum"};
    return names;
}

void RopeScores::combine(const std::string& new_variant) {
    require_variant(new_variant, "", "variant");
    if (n_kv_head < 1 || n_head % n_kv_head != 0)
        throw Error("", "n_kv_head", "must divide n_head (" + std::to_string(n_head) + ")");
    const int64_t group = n_head / n_kv_head;
    const bool product = new_variant == "product";
    scores.assign(n_layer * n_kv_head * n_pairs, 0.0);
    for (int64_t l = 0; l < n_layer; ++l)
        for (int64_t g = 0; g < n_kv_head; ++g)
            for (int64_t k = 0; k < n_pairs; ++k) {
                const double kn = k_norm(l, g, k);
                double s = 0;
                for (int64_t h = g * group; h < (g + 1) * group; ++h) s += product ? q_norm(l, h, k) * kn : q_norm(l, h, k) + kn;
                scores[(l * n_kv_head + g) * n_pairs + k] = s;
            }
    variant = new_variant;
}

std::vector<int64_t> RopeScores::top_pairs(int64_t l, int64_t g, int64_t r) const {
    std::vector<int64_t> order(n_pairs);
    std::iota(order.begin(), order.end(), 0);
    // stable_sort keeps the ascending index order among equal scores: ties go to the lower k.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score(l, g, a) > score(l, g, b); });
    order.resize(std::min<int64_t>(std::max<int64_t>(r, 0), n_pairs));
    return order;
}

std::string RopeScores::to_json_text() const {
    const CalibrationProvenance& p = provenance;
    const json calibration = {{"model", p.model}, {"text_file", p.text_file}, {"windows", p.windows},
                              {"seq_len", p.seq_len}, {"tokens", p.tokens}};
    // Written by hand to fix the key order (header first, then the arrays) and the layout;
    // from_json_text reads it with any JSON reader's rules.
    return "{\n"
           " \"format\": \"mlawb-rope-scores\",\n"
           " \"variant\": " + json(variant).dump() + ",\n" +
           " \"n_layer\": " + std::to_string(n_layer) + ",\n" +
           " \"n_head\": " + std::to_string(n_head) + ",\n" +
           " \"n_kv_head\": " + std::to_string(n_kv_head) + ",\n" +
           " \"n_pairs\": " + std::to_string(n_pairs) + ",\n" +
           " \"calibration\": " + calibration.dump() + ",\n" +
           " \"scores\": " + cube_text(scores, n_layer, n_kv_head, n_pairs) + ",\n" +
           " \"q_norms\": " + cube_text(q_norms, n_layer, n_head, n_pairs) + ",\n" +
           " \"k_norms\": " + cube_text(k_norms, n_layer, n_kv_head, n_pairs) + "\n}\n";
}

RopeScores RopeScores::from_json_text(const std::string& text, const std::string& source) {
    // Depth-capped; a number past double's range ("1e400") is refused here too, as an Error.
    const json j = parse_json_text(text, source, "", "not valid JSON");
    if (!j.is_object()) throw Error(source, "", "expected a JSON object with scores, q_norms and k_norms");
    RopeScores s;
    s.n_layer = read_dimension(j, "n_layer", source);
    s.n_head = read_dimension(j, "n_head", source);
    s.n_kv_head = read_dimension(j, "n_kv_head", source);
    s.n_pairs = read_dimension(j, "n_pairs", source);
    if (s.n_head % s.n_kv_head != 0)
        throw Error(source, "n_kv_head",
                    std::to_string(s.n_kv_head) + " does not divide n_head (" + std::to_string(s.n_head) + ")");
    if (!j.contains("variant")) throw Error(source, "variant", "missing");
    if (!j.at("variant").is_string()) throw Error(source, "variant", "expected a string");
    s.variant = j.at("variant").get<std::string>();
    require_variant(s.variant, source, "variant");
    s.scores = read_cube(j, "scores", s.n_layer, s.n_kv_head, s.n_pairs, source);
    s.q_norms = read_cube(j, "q_norms", s.n_layer, s.n_head, s.n_pairs, source);
    s.k_norms = read_cube(j, "k_norms", s.n_layer, s.n_kv_head, s.n_pairs, source);
    // Provenance is informative (hand-made score files may lack it), but typed when present.
    if (j.contains("calibration")) {
        const json& c = j.at("calibration");
        if (!c.is_object()) throw Error(source, "calibration", "expected an object");
        const std::string prefix = "calibration.";
        s.provenance.model = read_string(c, "model", source, prefix);
        s.provenance.text_file = read_string(c, "text_file", source, prefix);
        s.provenance.windows = read_count(c, "windows", source, prefix);
        s.provenance.seq_len = read_count(c, "seq_len", source, prefix);
        s.provenance.tokens = read_count(c, "tokens", source, prefix);
    }
    return s;
}

void RopeScores::save(const std::string& path) const {
    // Temp file beside the target, fsync, rename over it: a reader never sees half a file.
    write_file_atomically(path, to_json_text());
}

RopeScores RopeScores::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open scores file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw Error(path, "", "read failed");
    return from_json_text(text.str(), path);
}

}  // namespace mlawb
