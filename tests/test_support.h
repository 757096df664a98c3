// Helpers shared by the Qt Test suites: where the fixtures are, and a loud failure when
// they are missing (a test whose data is missing fails, never skips).
#pragma once

#include <QtTest/QtTest>
#include <string>

namespace mlawb::test {

inline std::string shared_dir() { return MLAWB_SHARED_DIR; }
inline std::string fixtures_dir() { return shared_dir() + "/fixtures"; }
inline std::string model_dir(const std::string& name) { return fixtures_dir() + "/models/" + name; }
inline std::string source_dir() { return MLAWB_SOURCE_DIR; }
inline std::string binary_dir() { return MLAWB_BINARY_DIR; }

}  // namespace mlawb::test

// Fails the current test (it must be called from a test function) when `path` is missing.
#define MLAWB_REQUIRE_PATH(path)                                                          \
    do {                                                                                  \
        if (!QFileInfo::exists(QString::fromStdString(path)))                             \
            QFAIL(qPrintable(QStringLiteral("test data missing: ") + QString::fromStdString(path))); \
    } while (0)

// Runs `expr`, which must throw mlawb::Error whose message contains every string in `needles`.
#define MLAWB_EXPECT_ERROR(expr, ...)                                                      \
    do {                                                                                  \
        bool thrown_ = false;                                                             \
        try {                                                                             \
            (void)(expr);                                                                 \
        } catch (const mlawb::Error& e_) {                                                \
            thrown_ = true;                                                               \
            const std::string msg_ = e_.what();                                           \
            for (const char* needle_ : {__VA_ARGS__}) {                                   \
                if (msg_.find(needle_) == std::string::npos)                              \
                    QFAIL(qPrintable(QStringLiteral("error \"%1\" lacks \"%2\"")           \
                                         .arg(QString::fromStdString(msg_), needle_)));   \
            }                                                                             \
        }                                                                                 \
        if (!thrown_) QFAIL("expected mlawb::Error from " #expr);                        \
    } while (0)
