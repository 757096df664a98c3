// Hidden sibling folders for all-or-nothing writes. A writer fills ".NAME.partial-PID@HOST" beside
// NAME and renames it into place when complete; an old folder being replaced or removed moves to
// ".NAME.old-PID@HOST" / ".NAME.removing-PID@HOST" first. A process killed meanwhile leaves its
// hidden folder behind (never a half-written NAME). remove_stale_staging sweeps those left by
// processes of this host that no longer run; ".old" folders are never swept (one may hold the
// only complete copy when a replace was killed between its two renames), nor are names of
// another host (a shared file system) or without a host (older versions of the workbench).
#pragma once

#include <filesystem>
#include <string>

namespace mlawb {

// parent(target) / ".NAME.KIND-PID@HOST" for this process; kind: "partial", "old" or "removing".
std::filesystem::path staging_path(const std::filesystem::path& target, const std::string& kind);

// Removes `folder`'s ".X.partial-PID@HOST" and ".X.removing-PID@HOST" entries whose HOST is this
// host and whose PID is not a running process. Returns how many it removed; errors are ignored
// (a sweep must never fail the write that triggers it).
int remove_stale_staging(const std::filesystem::path& folder);

}  // namespace mlawb
