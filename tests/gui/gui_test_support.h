// Helpers shared by the GUI tests: where screenshots go, and the export checks every plot panel
// passes (PNG decodes at the export size, PDF starts with %PDF, SVG parses as XML with an <svg>
// root and the plot's own text, CSV holds the plotted rows; unwritable or unknown paths fail
// with the path and a reason, never silently).
#pragma once

#include "test_support.h"

#include "app/gui/panels/PlotPanel.h"

#include <QDir>
#include <QFile>
#include <QImage>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QWidget>
#include <QXmlStreamReader>

#include <utility>

namespace mlawb::test {

// MLAWB_SCREENSHOT_DIR, else the build folder: a test run never rewrites files of the checkout.
// (The documentation's screenshots come from `mla-workbench --screenshots docs/screenshots`.)
inline QString screenshotDir() {
    const QByteArray dir = qgetenv("MLAWB_SCREENSHOT_DIR");
    return dir.isEmpty() ? QString::fromStdString(binary_dir() + "/screenshots") : QString::fromUtf8(dir);
}

inline void saveScreenshot(QWidget& widget, const QString& name) {
    QVERIFY(QDir().mkpath(screenshotDir()));
    QVERIFY(widget.grab().save(screenshotDir() + QLatin1Char('/') + name, "PNG"));
}

// The data lines of a CSV file (header excluded), split on commas outside quotes; empty on error.
inline QList<QStringList> csvRows(const QString& path) {
    QList<QStringList> rows;
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly | QIODevice::Text)) return rows;
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (int i = 1; i < lines.size(); ++i) {
        QStringList fields;
        QString field;
        bool quoted = false;
        for (QChar c : lines[i]) {
            if (c == QLatin1Char('"')) quoted = !quoted;
            else if (c == QLatin1Char(',') && !quoted) fields.append(std::exchange(field, QString()));
            else field.append(c);
        }
        fields.append(field);
        rows.append(fields);
    }
    return rows;
}

// Exports `panel` in every format into a temporary folder and validates each file; `svgText` is
// a string the plot draws (an axis label), which the SVG must contain; the CSV must hold the
// panel's exportedTable() rows.
inline void checkExports(mlawb::gui::PlotPanel& panel, const QString& svgText) {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const mlawb::gui::PlotTable expected = panel.exportedTable();
    QVERIFY2(!expected.rows.empty(), "the plot shows no data");

    const QString png = dir.filePath(QStringLiteral("plot.png"));
    mlawb::gui::ExportResult r = panel.exportTo(png);
    QVERIFY2(r.ok, qPrintable(r.message));
    const QImage image(png);
    QVERIFY(!image.isNull());
    QCOMPARE(image.size(), mlawb::gui::kExportSize);

    const QString pdf = dir.filePath(QStringLiteral("plot.PDF"));  // suffixes are case-insensitive
    r = panel.exportTo(pdf);
    QVERIFY2(r.ok, qPrintable(r.message));
    QFile pdfFile(pdf);
    QVERIFY(pdfFile.open(QIODevice::ReadOnly));
    QCOMPARE(pdfFile.read(5), QByteArray("%PDF-"));

    const QString svg = dir.filePath(QStringLiteral("plot.svg"));
    r = panel.exportTo(svg);
    QVERIFY2(r.ok, qPrintable(r.message));
    QFile svgFile(svg);
    QVERIFY(svgFile.open(QIODevice::ReadOnly));
    const QByteArray svgBytes = svgFile.readAll();
    QXmlStreamReader xml(svgBytes);
    QString root;
    int elements = 0;
    while (!xml.atEnd()) {
        if (xml.readNext() == QXmlStreamReader::StartElement) {
            if (root.isEmpty()) root = xml.name().toString();
            ++elements;
        }
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QCOMPARE(root, QStringLiteral("svg"));
    QVERIFY2(elements > 20, qPrintable(QString::number(elements)));  // a drawn plot, not an empty page
    QVERIFY2(svgBytes.contains(svgText.toUtf8()), qPrintable(svgText));

    const QString csv = dir.filePath(QStringLiteral("plot.csv"));
    r = panel.exportTo(csv);
    QVERIFY2(r.ok, qPrintable(r.message));
    const QList<QStringList> rows = csvRows(csv);
    QCOMPARE(rows.size(), static_cast<int>(expected.rows.size()));
    QCOMPARE(rows.first(), expected.rows.front());
    QCOMPARE(rows.last(), expected.rows.back());

    // Unwritable whoever runs the test (root ignores a read-only folder's mode bits): /proc.
    QSignalSpy errors(&panel, &mlawb::gui::PlotPanel::errorReported);
    for (const char* name : {"/proc/mlawb-plot.png", "/proc/mlawb-plot.pdf", "/proc/mlawb-plot.svg",
                             "/proc/mlawb-plot.csv"}) {
        const QString path = QLatin1String(name);
        r = panel.exportTo(path);
        QVERIFY2(!r.ok, name);
        QVERIFY2(r.message.startsWith(path + QStringLiteral(": ")) && r.message.size() > path.size() + 2,
                 qPrintable(r.message));
        QCOMPARE(panel.lastError(), r.message);
        QCOMPARE(errors.last().first().toString(), r.message);
        QVERIFY(!QFileInfo::exists(path));
    }
    QCOMPARE(errors.count(), 4);
    r = panel.exportTo(dir.filePath(QStringLiteral("no-such-folder/plot.svg")));
    QVERIFY(!r.ok);
    QVERIFY2(r.message.contains(QStringLiteral("does not exist")), qPrintable(r.message));
    r = panel.exportTo(dir.filePath(QStringLiteral("plot.svgz")));
    QVERIFY(!r.ok);
    QVERIFY2(r.message.contains(QStringLiteral("unknown format")), qPrintable(r.message));
}

}  // namespace mlawb::test
