// Reading JSON files and JSONL lines with errors that name the file (and line) at fault.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mlawb {

// Parses a whole JSON file; throws mlawb::Error(path, "", "cannot open" | "malformed JSON: ...").
nlohmann::json read_json_file(const std::string& path);

// Parses one JSONL line that must be an object; `where` names it ("file:line") in errors.
nlohmann::json parse_json_object_line(const std::string& text, const std::string& where);

}  // namespace mlawb
