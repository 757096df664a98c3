#include "core/json_io.h"

#include "core/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mlawb {

namespace {

// Thrown from the parser callback, caught around the parse (never escapes this file).
struct TooDeep {};

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& source, const std::string& field,
                               const char* what) {
    using json = nlohmann::json;
    // The callback sees each array/object start with the depth of its parent (0 at top level),
    // so depth + 1 levels are open once it returns.
    const json::parser_callback_t limit_depth = [](int depth, json::parse_event_t event, json&) {
        if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
            depth >= kMaxJsonDepth)
            throw TooDeep{};
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), limit_depth);
    } catch (const TooDeep&) {
        throw Error(source, field, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                       " levels of arrays/objects (a resource limit; no valid input comes close)");
    } catch (const json::exception& e) {
        throw Error(source, field, std::string(what) + ": " + e.what());
    }
}

nlohmann::json read_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw Error(path, "", "read failed");
    return parse_json_text(text.str(), path);
}

nlohmann::json parse_json_object_line(const std::string& text, const std::string& where) {
    nlohmann::json j = parse_json_text(text, where);
    if (!j.is_object()) throw Error(where, "", "expected a JSON object");
    return j;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
    const std::string temp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path, "", "cannot create " + temp + ": " + std::strerror(errno));
    const char* cursor = bytes.data();
    size_t left = bytes.size();
    bool ok = true;
    while (ok && left > 0) {
        const ssize_t done = ::write(fd, cursor, left);
        if (done < 0 && errno == EINTR) continue;
        ok = done > 0;
        if (ok) cursor += done, left -= static_cast<size_t>(done);
    }
    // fsync before rename: otherwise a crash can leave the new name on an empty file.
    ok = ok && ::fsync(fd) == 0;
    const std::string reason = std::strerror(errno);
    ok = (::close(fd) == 0) && ok;
    if (!ok) {
        ::unlink(temp.c_str());
        throw Error(path, "", "cannot write " + temp + ": " + reason + " (disk full?)");
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        const std::string rename_reason = std::strerror(errno);
        ::unlink(temp.c_str());
        throw Error(path, "", "cannot rename " + temp + " into place: " + rename_reason);
    }
    // Make the rename itself durable; best effort (some file systems refuse fsync on folders).
    const std::string folder = std::filesystem::path(path).parent_path().string();
    const int dir = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
}

}  // namespace mlawb
