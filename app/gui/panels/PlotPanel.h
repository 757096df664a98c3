// PlotPanel: what every panel with a plot shares: export of the plot (PNG, PDF, SVG) and of its
// data (CSV) through one file dialog, and the one way a panel reports an error: the message goes
// to the panel's status line, errorReported (MainWindow routes it to a dialog, or not, in
// tests and --screenshots) and lastError(). Export failures are returned and reported, never
// silent. Panels that compute in a worker also share its controls: the BackgroundJob, a progress
// bar fed by it, a Cancel button, and the start/end states of the button that started it.
#pragma once

#include "app/gui/plots/PlotExport.h"

#include <QString>
#include <QWidget>

class QCustomPlot;
class QProgressBar;
class QPushButton;

namespace mlawb::gui {

class BackgroundJob;

class PlotPanel : public QWidget {
    Q_OBJECT

public:
    explicit PlotPanel(QWidget* parent = nullptr);

    // Writes the plot (.png, .pdf, .svg) or its data (.csv); a failure is reported and returned.
    ExportResult exportTo(const QString& path);
    // Asks for a file (the default name is exportBaseName() + ".png") and exports to it.
    void chooseExportFile();

    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

    virtual QCustomPlot* exportedPlot() const = 0;
    virtual PlotTable exportedTable() const = 0;
    virtual QString exportBaseName() const = 0;  // "rope-heatmap"

Q_SIGNALS:
    void errorReported(const QString& message);
    void exported(const QString& path);

protected:
    // Records and signals the error, shows it on the status line, and a dialog when allowed.
    void reportError(const QString& title, const QString& message);
    // The panel's status line (a label above the plot); may be called with an error.
    virtual void showStatus(const QString& message) = 0;

    // An "Export…" button wired to chooseExportFile(), for the panel's layout.
    QPushButton* makeExportButton();
    // The worker and its controls (made once, by the subclass's constructor): progress reports
    // move the bar, Cancel cancels; `startButton` is disabled while the job runs. Connect to
    // job()->finished for the result.
    void createJobControls(QPushButton* startButton);
    BackgroundJob* job() const { return job_; }
    QProgressBar* jobProgress() const { return job_progress_; }
    QPushButton* jobCancel() const { return job_cancel_; }
    // The controls while the job runs (busy bar, `status` on the status line) and after it ends
    // (a full bar when it succeeded).
    void markJobStarted(const QString& status);
    void markJobEnded(bool ok);

private:
    BackgroundJob* job_ = nullptr;
    QProgressBar* job_progress_ = nullptr;
    QPushButton* job_cancel_ = nullptr;
    QPushButton* job_start_ = nullptr;
    bool show_dialogs_ = true;
    QString last_error_;
};

}  // namespace mlawb::gui
