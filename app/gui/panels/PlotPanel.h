// PlotPanel: what every panel with a plot shares: export of the plot (PNG, PDF, SVG) and of its
// data (CSV) through one file dialog, and the one way a panel reports an error: the message goes
// to the panel's status line, errorReported (MainWindow routes it to a dialog, or not, in
// tests and --screenshots) and lastError(). Export failures are returned and reported, never
// silent.
#pragma once

#include "app/gui/plots/PlotExport.h"

#include <QString>
#include <QWidget>

class QCustomPlot;

namespace mlawb::gui {

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

private:
    bool show_dialogs_ = true;
    QString last_error_;
};

}  // namespace mlawb::gui
