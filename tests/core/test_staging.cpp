// Staging folders (core/staging): the names a writer stages under, and the sweep that removes
// only what killed processes of this host left: ".partial" and ".removing" entries whose process
// is gone, never ".old" (it may hold the only complete copy), never another host's, never names
// of another shape, never visible folders, never a running process's.
#include <QTemporaryDir>
#include <QTest>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "core/staging.h"

namespace fs = std::filesystem;
using namespace mlawb;

namespace {

// A PID that no longer runs: a child that exited and was reaped.
long gone_pid() {
    const pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return child;
}

// The host part staging_path gives this process.
std::string host_of_this_process(const fs::path& folder) {
    const std::string name = staging_path(folder / "x", "partial").filename().string();
    return name.substr(name.rfind('@') + 1);
}

void make_folder(const fs::path& p) {
    fs::create_directories(p);
    std::ofstream(p / "model.safetensors") << "weights";
}

}  // namespace

class TestStaging : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void stagingName();
    void sweep_data();
    void sweep();
    void missingFolder();
};

void TestStaging::stagingName() {
    const fs::path p = staging_path(fs::path("runs") / "out", "partial");
    QCOMPARE(QString::fromStdString(p.parent_path().string()), QString("runs"));
    const std::string name = p.filename().string();
    const std::string prefix = ".out.partial-" + std::to_string(getpid()) + "@";
    QVERIFY2(name.rfind(prefix, 0) == 0, name.c_str());
    QVERIFY(name.size() > prefix.size());  // a host follows
    QCOMPARE(QString::fromStdString(staging_path("out", "old").parent_path().string()), QString("."));
}

void TestStaging::sweep_data() {
    QTest::addColumn<QString>("kind");   // the KIND of ".out.KIND-PID@HOST", or a whole name after '!'
    QTest::addColumn<QString>("pid");    // gone, self, or a literal
    QTest::addColumn<QString>("host");   // this, or a literal
    QTest::addColumn<bool>("removed");
    QTest::newRow("partial of a gone process") << "partial" << "gone" << "this" << true;
    QTest::newRow("removing of a gone process") << "removing" << "gone" << "this" << true;
    QTest::newRow("old of a gone process") << "old" << "gone" << "this" << false;
    QTest::newRow("partial of this (running) process") << "partial" << "self" << "this" << false;
    QTest::newRow("partial of pid 1 (running, someone else's)") << "partial" << "1" << "this" << false;
    QTest::newRow("partial of another host") << "partial" << "gone" << "other-host.example" << false;
    QTest::newRow("older name without a host") << "!.out.partial-GONE" << "gone" << "this" << false;
    QTest::newRow("visible folder") << "!out" << "gone" << "this" << false;
    QTest::newRow("not a pid") << "!.out.partial-12x@HOST" << "gone" << "this" << false;
    QTest::newRow("unknown kind") << "backup" << "gone" << "this" << false;
}

void TestStaging::sweep() {
    QFETCH(QString, kind);
    QFETCH(QString, pid);
    QFETCH(QString, host);
    QFETCH(bool, removed);
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path folder = tmp.path().toStdString();
    const std::string this_host = host_of_this_process(folder);
    const std::string pid_text = pid == "gone" ? std::to_string(gone_pid())
                                 : pid == "self" ? std::to_string(getpid())
                                                 : pid.toStdString();
    std::string name;
    if (kind.startsWith('!')) {
        name = kind.mid(1).toStdString();
        for (const auto& [key, value] : {std::pair<std::string, std::string>{"GONE", pid_text}, {"HOST", this_host}}) {
            const size_t at = name.find(key);
            if (at != std::string::npos) name.replace(at, key.size(), value);
        }
    } else {
        name = ".out." + kind.toStdString() + "-" + pid_text + "@" + (host == "this" ? this_host : host.toStdString());
    }
    make_folder(folder / name);
    make_folder(folder / "unrelated");
    const int n = remove_stale_staging(folder);
    QCOMPARE(n, removed ? 1 : 0);
    QCOMPARE(fs::exists(folder / name), !removed);
    QVERIFY(fs::exists(folder / "unrelated" / "model.safetensors"));
}

void TestStaging::missingFolder() {
    // A sweep never fails the write that triggers it.
    QCOMPARE(remove_stale_staging("/nonexistent/mlawb-staging-test"), 0);
}

QTEST_APPLESS_MAIN(TestStaging)
#include "test_staging.moc"
