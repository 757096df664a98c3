#include "app/gui/plots/PlotExport.h"

#include <QDir>
#include <QFileInfo>
#include <QSaveFile>
#include "app/gui/plots/QCustomPlotInclude.h"

namespace mlawb::gui {

namespace {

QString csvField(const QString& field) {
    if (!field.contains(QLatin1Char(',')) && !field.contains(QLatin1Char('"')) && !field.contains(QLatin1Char('\n')))
        return field;
    QString quoted = field;
    quoted.replace(QStringLiteral("\""), QStringLiteral("\"\""));
    return QStringLiteral("\"%1\"").arg(quoted);
}

ExportResult failure(const QString& path, const QString& reason) {
    return {false, QStringLiteral("%1: %2").arg(QDir::toNativeSeparators(path), reason)};
}

ExportResult writeCsv(const PlotTable& table, const QString& path) {
    QSaveFile file(path);  // written beside, renamed over: no half-written CSV on failure
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text)) return failure(path, file.errorString());
    file.write(csvText(table).toUtf8());
    if (!file.commit()) return failure(path, file.errorString());
    return {true, {}};
}

}  // namespace

QString csvText(const PlotTable& table) {
    QString text;
    auto appendRow = [&text](const QStringList& row) {
        QStringList fields;
        for (const QString& f : row) fields.append(csvField(f));
        text += fields.join(QLatin1Char(',')) + QLatin1Char('\n');
    };
    appendRow(table.header);
    for (const QStringList& row : table.rows) appendRow(row);
    return text;
}

QString exportFileFilter() {
    return QStringLiteral("PNG image (*.png);;PDF document (*.pdf);;CSV data (*.csv)");
}

ExportResult exportPlot(QCustomPlot& plot, const PlotTable& table, const QString& path, QSize size) {
    const QFileInfo info(path);
    const QString suffix = info.suffix().toLower();
    if (suffix != QLatin1String("png") && suffix != QLatin1String("pdf") && suffix != QLatin1String("csv"))
        return failure(path, QStringLiteral("unknown format \"%1\" (use .png, .pdf or .csv)").arg(info.suffix()));
    const QFileInfo folder(info.absolutePath());
    if (!folder.isDir()) return failure(path, QStringLiteral("folder does not exist"));
    if (!folder.isWritable()) return failure(path, QStringLiteral("folder is not writable"));
    if (info.exists() && !info.isWritable()) return failure(path, QStringLiteral("file is not writable"));

    if (suffix == QLatin1String("csv")) return writeCsv(table, path);
    const bool saved = suffix == QLatin1String("png") ? plot.savePng(path, size.width(), size.height())
                                                      : plot.savePdf(path, size.width(), size.height());
    if (!saved) return failure(path, QStringLiteral("QCustomPlot could not write the %1 file").arg(suffix.toUpper()));
    return {true, {}};
}

}  // namespace mlawb::gui
