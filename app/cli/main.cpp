// mlawb: the headless command line of MLA Workbench.
#include "app/cli/commands.h"

#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return mlawb::cli::run_cli(args, std::cout, std::cerr);
}
