// Error type shared by every layer: each message names the file and the field
// (or tensor) at fault, so the CLI can print it as one line and the GUI in a dialog.
#pragma once

#include <stdexcept>
#include <string>

namespace mlawb {

class Error : public std::runtime_error {
public:
    // file: the path at fault (may be empty for in-memory input);
    // field: the JSON key, tensor name or option at fault (may be empty).
    Error(std::string file, std::string field, const std::string& message);

    const std::string& file() const { return file_; }
    const std::string& field() const { return field_; }
    // The message without the "file: field: " prefix.
    const std::string& reason() const { return reason_; }

private:
    std::string file_;
    std::string field_;
    std::string reason_;
};

// Thrown when a long operation (calibration, evaluation, conversion) is cancelled.
class Cancelled : public std::runtime_error {
public:
    Cancelled() : std::runtime_error("cancelled") {}
};

}  // namespace mlawb
