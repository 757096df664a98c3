// Where the workbench finds what ships with it: the demo model, the demo text and the
// LongBench-format task set that make the first launch useful with no set-up. Every lookup
// tries, in order, the installed share folder beside the binary
// (<bin>/../share/mla-workbench/...), the source tree's resources/ (the build's
// MLAWB_RESOURCES_DIR) and, for the tasks, the shared fixtures (MLAWB_SHARED_DIR/fixtures), and
// returns the first that exists as a clean absolute path, or "" when none does.
#pragma once

#include <QString>

namespace mlawb::gui {

QString bundledModelFolder();  // models/wb-tiny-mha
QString bundledTasksFolder();  // tasks/longbench-syn (or fixtures/longbench-syn)
QString demoTextFile();        // text/demo.txt

}  // namespace mlawb::gui
