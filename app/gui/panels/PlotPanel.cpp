#include "app/gui/panels/PlotPanel.h"

#include "app/gui/plots/QCustomPlotInclude.h"
#include "app/gui/workers/BackgroundJob.h"

#include <QFileDialog>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>

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

QPushButton* PlotPanel::makeExportButton() {
    auto* button = new QPushButton(tr("Export…"));
    connect(button, &QPushButton::clicked, this, &PlotPanel::chooseExportFile);
    return button;
}

void PlotPanel::createJobControls(QPushButton* startButton) {
    job_ = new BackgroundJob(this);
    job_start_ = startButton;
    job_progress_ = new QProgressBar;
    job_progress_->setRange(0, 1);
    job_progress_->setValue(0);
    job_cancel_ = new QPushButton(tr("Cancel"));
    job_cancel_->setEnabled(false);
    connect(job_, &BackgroundJob::progressed, this, [this](qint64 done, qint64 total) {
        job_progress_->setRange(0, static_cast<int>(total));
        job_progress_->setValue(static_cast<int>(done));
    });
    connect(job_cancel_, &QPushButton::clicked, job_, &BackgroundJob::cancel);
}

void PlotPanel::markJobStarted(const QString& status) {
    if (job_start_) job_start_->setEnabled(false);
    job_cancel_->setEnabled(true);
    job_progress_->setRange(0, 0);  // busy until the first progress report
    showStatus(status);
}

void PlotPanel::markJobEnded(bool ok) {
    if (job_start_) job_start_->setEnabled(true);
    job_cancel_->setEnabled(false);
    job_progress_->setRange(0, 1);
    job_progress_->setValue(ok ? 1 : 0);
}

}  // namespace mlawb::gui
