// For the Qt Test suites replaying fuzz findings (tests/*/test_fuzz_regressions.cpp): runs one
// input in a forked child, so an input that still crashes (a stack overflow, an ASan report,
// std::terminate) fails that one test with the reason instead of taking the suite down.
#pragma once

#include "core/error.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <typeinfo>

namespace mlawb::test {

// "" when `body` throws mlawb::Error whose message holds every needle; otherwise what happened
// instead ("no error", "std::out_of_range: ...", "crashed: signal 11 (Segmentation fault)", ...).
inline std::string refusal_in_child(const std::function<void()>& body, std::initializer_list<const char*> needles) {
    int channel[2];
    if (::pipe(channel) != 0) return std::string("pipe failed: ") + std::strerror(errno);
    const pid_t child = ::fork();
    if (child < 0) return std::string("fork failed: ") + std::strerror(errno);
    if (child == 0) {
        ::close(channel[0]);
        // Qt Test's fatal-signal handler would attach gdb for a stack dump (minutes); the
        // parent reports the signal instead.
        for (int signal_number : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) std::signal(signal_number, SIG_DFL);
        std::string verdict;
        try {
            body();
            verdict = "no error";
        } catch (const Error& e) {
            for (const char* needle : needles)
                if (std::string(e.what()).find(needle) == std::string::npos)
                    verdict += std::string("error \"") + e.what() + "\" lacks \"" + needle + "\"; ";
        } catch (const std::exception& e) {
            verdict = std::string("not an mlawb::Error but ") + typeid(e).name() + ": " + e.what();
        } catch (...) {
            verdict = "an exception that is not a std::exception";
        }
        const ssize_t written = ::write(channel[1], verdict.data(), verdict.size());
        (void)written;
        ::_exit(0);
    }
    ::close(channel[1]);
    std::string verdict;
    char buffer[4096];
    for (ssize_t n; (n = ::read(channel[0], buffer, sizeof buffer)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        verdict.append(buffer, static_cast<size_t>(n));
    }
    ::close(channel[0]);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        return "crashed: signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return "crashed: exit status " + std::to_string(WEXITSTATUS(status)) + " (a sanitizer report? see stderr)";
    return verdict;
}

}  // namespace mlawb::test

// The input must be refused with an mlawb::Error naming every needle, in a child process.
#define MLAWB_EXPECT_REFUSAL_IN_CHILD(expr, ...)                                                        \
    do {                                                                                               \
        const std::string verdict_ = mlawb::test::refusal_in_child([&] { (void)(expr); }, {__VA_ARGS__}); \
        if (!verdict_.empty()) QFAIL(qPrintable(QStringLiteral(#expr ": ") + QString::fromStdString(verdict_))); \
    } while (0)
