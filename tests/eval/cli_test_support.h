// What the sweep and recommend tests share: the fixture model and task set, and `mlawb` run in
// process (cli::run_cli) with its exit status and both streams.
#pragma once

#include "app/cli/commands.h"
#include "core/config.h"
#include "test_support.h"

#include <sstream>
#include <string>
#include <vector>

namespace mlawb::test {

inline std::string tasks_dir() { return fixtures_dir() + "/longbench-syn"; }
inline std::string mha() { return model_dir("wb-tiny-mha"); }
inline ModelConfig mha_config() { return ModelConfig::from_file(mha() + "/config.json"); }

struct CliRun {
    int status;
    std::string out, err;
};
inline CliRun cli_run(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int status = cli::run_cli(args, out, err);
    return {status, out.str(), err.str()};
}

}  // namespace mlawb::test
