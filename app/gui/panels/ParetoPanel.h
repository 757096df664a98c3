// ParetoPanel: what a setting costs in accuracy for what it saves in memory. Reads every run of
// the results database (RunCatalog), and for the chosen model, dataset (or the mean of the
// datasets) and run options shows a ParetoPlot: one point per setting, the front, the original
// model's baseline. A click on a point asks MainWindow to open that run in the Results tab.
#pragma once

#include "app/gui/RunCatalog.h"
#include "app/gui/panels/PlotPanel.h"

#include <QString>

#include <vector>

class QComboBox;
class QLabel;

namespace mlawb::gui {

class ParetoPlot;

class ParetoPanel : public PlotPanel {
    Q_OBJECT

public:
    explicit ParetoPanel(QWidget* parent = nullptr);

    // The database to read; reloads. "" shows the hint.
    void setDatabasePath(const QString& path);
    QString databasePath() const { return db_path_; }
    // The model the view prefers (the one open in the window), matched by folder.
    void setCurrentModelFolder(const QString& folder);
    // Re-reads the database (after an evaluation); keeps the choices where they still exist.
    void reload();

    // Choices, as the user makes them ("" dataset = mean of the datasets).
    void setDataset(const QString& dataset);
    QComboBox* modelCombo() const { return model_; }
    QComboBox* datasetCombo() const { return dataset_; }
    QComboBox* optionsCombo() const { return options_; }
    ParetoPlot* plot() const { return plot_; }
    const ParetoData& data() const;

    QCustomPlot* exportedPlot() const override;
    PlotTable exportedTable() const override;
    QString exportBaseName() const override { return QStringLiteral("pareto"); }

Q_SIGNALS:
    void runActivated(qint64 runId);

protected:
    void showStatus(const QString& message) override;

private:
    void fillModels();
    void fillDatasetsAndOptions();
    void rebuild();

    QString db_path_;
    QString current_model_folder_;
    std::vector<RunDetail> runs_;
    bool filling_ = false;

    QComboBox* model_ = nullptr;    // data: model hash
    QComboBox* dataset_ = nullptr;  // data: dataset ("" = mean)
    QComboBox* options_ = nullptr;  // data: canonical options JSON
    QLabel* status_ = nullptr;
    ParetoPlot* plot_ = nullptr;
};

}  // namespace mlawb::gui
