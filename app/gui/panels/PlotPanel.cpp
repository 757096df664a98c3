#include "app/gui/panels/PlotPanel.h"

#include "app/gui/plots/QCustomPlotInclude.h"

#include <QFileDialog>
#include <QMessageBox>

namespace mlawb::gui {

PlotPanel::PlotPanel(QWidget* parent) : QWidget(parent) {}

void PlotPanel::chooseExportFile() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export plot"), exportBaseName() + QStringLiteral(".png"),
                                                      exportFileFilter());
    if (!path.isEmpty()) exportTo(path);
}

ExportResult PlotPanel::exportTo(const QString& path) {
    QCustomPlot* plot = exportedPlot();
    ExportResult result = plot ? exportPlot(*plot, exportedTable(), path)
                               : ExportResult{false, path + QStringLiteral(": this panel has no plot")};
    if (!result.ok) reportError(tr("Export failed"), result.message);
    else Q_EMIT exported(path);
    return result;
}

void PlotPanel::reportError(const QString& title, const QString& message) {
    last_error_ = message;
    showStatus(message);
    Q_EMIT errorReported(message);
    if (show_dialogs_) QMessageBox::critical(this, title, message);
}

}  // namespace mlawb::gui
