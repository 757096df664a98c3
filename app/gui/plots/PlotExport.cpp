#include "app/gui/plots/PlotExport.h"

#include <QDir>
#include <QFileInfo>
#include <QSaveFile>
#include <QSvgGenerator>
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

// QSvgGenerator reports no write errors itself: it writes into a QSaveFile, whose commit does.
ExportResult writeSvg(QCustomPlot& plot, const QString& path, QSize size) {
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) return failure(path, file.errorString());
    QSvgGenerator generator;
    generator.setOutputDevice(&file);
    generator.setSize(size);
    generator.setViewBox(QRect(QPoint(0, 0), size));
    generator.setTitle(plot.windowTitle());
    generator.setDescription(QStringLiteral("MLA Workbench plot"));
    QCPPainter painter;
    if (!painter.begin(&generator)) {
        file.cancelWriting();
        return failure(path, QStringLiteral("cannot paint into the SVG generator"));
    }
    plot.toPainter(&painter, size.width(), size.height());
    painter.end();
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
    return QStringLiteral("PNG image (*.png);;PDF document (*.pdf);;SVG image (*.svg);;CSV data (*.csv)");
}

ExportResult exportPlot(QCustomPlot& plot, const PlotTable& table, const QString& path, QSize size) {
    const QFileInfo info(path);
    const QString suffix = info.suffix().toLower();
    const QStringList known = {QStringLiteral("png"), QStringLiteral("pdf"), QStringLiteral("svg"), QStringLiteral("csv")};
    if (!known.contains(suffix))
        return failure(path, QStringLiteral("unknown format \"%1\" (use .png, .pdf, .svg or .csv)").arg(info.suffix()));
    const QFileInfo folder(info.absolutePath());
    if (!folder.isDir()) return failure(path, QStringLiteral("folder does not exist"));
    if (!folder.isWritable()) return failure(path, QStringLiteral("folder is not writable"));
    if (info.exists() && !info.isWritable()) return failure(path, QStringLiteral("file is not writable"));

    if (suffix == QLatin1String("csv")) return writeCsv(table, path);
    if (suffix == QLatin1String("svg")) return writeSvg(plot, path, size);
    const bool saved = suffix == QLatin1String("png") ? plot.savePng(path, size.width(), size.height())
                                                      : plot.savePdf(path, size.width(), size.height());
    if (!saved) return failure(path, QStringLiteral("QCustomPlot could not write the %1 file").arg(suffix.toUpper()));
    return {true, {}};
}

}  // namespace mlawb::gui
