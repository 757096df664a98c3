// Reading JSON files and JSONL lines with errors that name the file (and line) at fault, with
// the nesting of arrays and objects capped (a resource limit on outside input); writing the
// files we produce crash-safely.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace mlawb {

// Deepest nesting of arrays and objects a JSON document we read may have. Ours stay under 10
// (config.json, tokenizer.json, safetensors headers, scores, masks, LongBench records); the
// cap keeps a hostile file ("[[[[..." by the megabyte) from driving recursive code (dump,
// copies, comparisons, our own walks) into a stack overflow.
constexpr int kMaxJsonDepth = 256;

// Parses JSON text with nesting capped at kMaxJsonDepth. Throws
// mlawb::Error(source, field, "<what>: <parser message>") for bad syntax and
// mlawb::Error(source, field, "JSON nested deeper than 256 levels ...") past the cap.
nlohmann::json parse_json_text(std::string_view text, const std::string& source, const std::string& field = "",
                               const char* what = "malformed JSON");

// Parses a whole JSON file; throws mlawb::Error(path, "", "cannot open" | "malformed JSON: ...").
nlohmann::json read_json_file(const std::string& path);

// Parses one JSONL line that must be an object; `where` names it ("file:line") in errors.
nlohmann::json parse_json_object_line(const std::string& text, const std::string& where);

// Writes `bytes` to `path` crash-safely: a temp file beside it ("<path>.tmp.<pid>"), fsync,
// rename over `path`, fsync of the folder. A reader (or a run after kill -9 or a power cut) sees
// the old file or the new one, never half of one. Throws mlawb::Error(path, "", reason) and
// removes the temp file on failure.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace mlawb
