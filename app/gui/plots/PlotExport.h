// One export path for every plot: PNG and PDF through QCustomPlot's savers, SVG through Qt SVG's
// QSvgGenerator painted by QCustomPlot's own painter, CSV of the data the plot shows. Chosen by
// the file's suffix; returns whether it worked and why not, so the panels (and tests) never meet
// a silent failure.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>

#include <vector>

class QCustomPlot;

namespace mlawb::gui {

// The plotted data as a table: one row per plotted point (or heatmap cell).
struct PlotTable {
    QStringList header;
    std::vector<QStringList> rows;
};

struct ExportResult {
    bool ok = false;
    QString message;  // empty when ok; otherwise names the file and the reason
};

// Publication size (pixels for PNG and SVG, points for PDF).
inline constexpr QSize kExportSize{1200, 800};

// Writes `path` as .png, .pdf, .svg or .csv (by suffix, case-insensitive). Fails for any other
// suffix, a folder that does not exist or is not writable, and a saver that reports failure.
ExportResult exportPlot(QCustomPlot& plot, const PlotTable& table, const QString& path, QSize size = kExportSize);

// RFC 4180 text of `table` (fields with commas, quotes or newlines quoted).
QString csvText(const PlotTable& table);

// "PNG image (*.png);;PDF document (*.pdf);;SVG image (*.svg);;CSV data (*.csv)" for the dialogs.
QString exportFileFilter();

}  // namespace mlawb::gui
