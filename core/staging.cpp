#include "core/staging.h"

#include <cerrno>
#include <csignal>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace mlawb {

namespace {

// The host part of staging names: gethostname with anything outside [A-Za-z0-9.-] replaced.
const std::string& this_host() {
    static const std::string host = [] {
        char buf[256] = {0};
        gethostname(buf, sizeof(buf) - 1);
        std::string h = buf[0] ? buf : "localhost";
        for (char& c : h)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
                c = '_';
        return h;
    }();
    return host;
}

bool process_gone(long pid) {
    if (pid <= 0) return false;
    return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;  // EPERM: alive, someone else's
}

// ".X.KIND-PID@HOST" -> KIND, PID, HOST (false when the name has another shape).
bool parse(const std::string& name, std::string& kind, long& pid, std::string& host) {
    if (name.size() < 4 || name[0] != '.') return false;
    const size_t at = name.rfind('@');
    if (at == std::string::npos) return false;
    const size_t dash = name.rfind('-', at);
    if (dash == std::string::npos || dash + 1 == at || at - dash > 10) return false;
    pid = 0;
    for (size_t i = dash + 1; i < at; ++i) {
        if (name[i] < '0' || name[i] > '9') return false;
        pid = pid * 10 + (name[i] - '0');
    }
    const size_t dot = name.rfind('.', dash);
    if (dot == std::string::npos || dot == 0) return false;
    kind = name.substr(dot + 1, dash - dot - 1);
    host = name.substr(at + 1);
    return true;
}

}  // namespace

fs::path staging_path(const fs::path& target, const std::string& kind) {
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    return parent / ("." + target.filename().string() + "." + kind + "-" + std::to_string(getpid()) + "@" + this_host());
}

int remove_stale_staging(const fs::path& folder) {
    std::vector<fs::path> stale;  // collected first: no removal while the directory is read
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        std::string kind, host;
        long pid = 0;
        if (!parse(it->path().filename().string(), kind, pid, host) || (kind != "partial" && kind != "removing")) continue;
        if (host == this_host() && process_gone(pid)) stale.push_back(it->path());
    }
    int removed = 0;
    for (const fs::path& p : stale) {
        std::error_code ignored;
        fs::remove_all(p, ignored);
        if (!ignored) ++removed;
    }
    return removed;
}

}  // namespace mlawb
