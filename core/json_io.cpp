#include "core/json_io.h"

#include "core/error.h"

#include <fstream>

namespace mlawb {

nlohmann::json read_json_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path, "", "cannot open");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(path, "", std::string("malformed JSON: ") + e.what());
    }
}

nlohmann::json parse_json_object_line(const std::string& text, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(where, "", std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object()) throw Error(where, "", "expected a JSON object");
    return j;
}

}  // namespace mlawb
