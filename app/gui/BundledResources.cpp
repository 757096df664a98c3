#include "app/gui/BundledResources.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStringList>

namespace mlawb::gui {

namespace {

QString firstExisting(const QStringList& candidates) {
    for (const QString& path : candidates)
        if (!path.isEmpty() && QFileInfo::exists(path)) return QDir::cleanPath(QFileInfo(path).absoluteFilePath());
    return {};
}

// `relative` under each place resources can live, most specific first.
QStringList resourceCandidates(const QString& relative) {
    QStringList out;
    if (QCoreApplication::instance())
        out << QCoreApplication::applicationDirPath() + QStringLiteral("/../share/mla-workbench/") + relative;
    out << QStringLiteral(MLAWB_RESOURCES_DIR "/") + relative;
    return out;
}

}  // namespace

QString bundledModelFolder() { return firstExisting(resourceCandidates(QStringLiteral("models/wb-tiny-mha"))); }

QString bundledTasksFolder() {
    QStringList candidates = resourceCandidates(QStringLiteral("tasks/longbench-syn"));
    candidates << QStringLiteral(MLAWB_SHARED_DIR_FOR_GUI "/fixtures/longbench-syn");
    return firstExisting(candidates);
}

QString demoTextFile() { return firstExisting(resourceCandidates(QStringLiteral("text/demo.txt"))); }

}  // namespace mlawb::gui
