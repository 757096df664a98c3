#include "app/gui/panels/ParetoPanel.h"

#include "app/gui/plots/ParetoPlot.h"

#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

#include <map>
#include <set>

namespace mlawb::gui {

namespace {

QString cleanFolder(const QString& folder) {
    return folder.isEmpty() ? QString() : QDir::cleanPath(QFileInfo(folder).absoluteFilePath());
}

}  // namespace

ParetoPanel::ParetoPanel(QWidget* parent) : PlotPanel(parent) {
    model_ = new QComboBox;
    model_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    model_->setMinimumContentsLength(24);
    dataset_ = new QComboBox;
    dataset_->setMinimumContentsLength(16);
    options_ = new QComboBox;
    options_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    options_->setMinimumContentsLength(28);
    options_->setToolTip(tr("Runs with other options (limit, prompt length) are not comparable and are not mixed"));
    auto* reloadButton = new QPushButton(tr("Reload"));
    QPushButton* exportButton = makeExportButton();
    status_ = new QLabel;
    status_->setWordWrap(true);
    plot_ = new ParetoPlot;

    auto* row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("Model")));
    row->addWidget(model_, 2);
    row->addWidget(new QLabel(tr("Dataset")));
    row->addWidget(dataset_, 1);
    row->addWidget(new QLabel(tr("Options")));
    row->addWidget(options_, 2);
    row->addWidget(reloadButton);
    row->addWidget(exportButton);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(row);
    layout->addWidget(status_);
    layout->addWidget(plot_, 1);

    connect(model_, &QComboBox::currentIndexChanged, this, [this] {
        if (filling_) return;
        fillDatasetsAndOptions();
        rebuild();
    });
    connect(dataset_, &QComboBox::currentIndexChanged, this, [this] {
        if (!filling_) rebuild();
    });
    connect(options_, &QComboBox::currentIndexChanged, this, [this] {
        if (!filling_) rebuild();
    });
    connect(reloadButton, &QPushButton::clicked, this, &ParetoPanel::reload);
    connect(plot_, &ParetoPlot::pointClicked, this, &ParetoPanel::runActivated);
    status_->setText(tr("No results database yet: run an evaluation in the Eval tab."));
}

const ParetoData& ParetoPanel::data() const { return plot_->data(); }

QCustomPlot* ParetoPanel::exportedPlot() const { return plot_; }

PlotTable ParetoPanel::exportedTable() const { return plot_->table(); }

void ParetoPanel::showStatus(const QString& message) { status_->setText(message); }

void ParetoPanel::setDatabasePath(const QString& path) {
    db_path_ = path;
    reload();
}

void ParetoPanel::setCurrentModelFolder(const QString& folder) {
    current_model_folder_ = cleanFolder(folder);
    // Prefer the open model when the database has it.
    for (int i = 0; i < model_->count(); ++i)
        if (model_->itemData(i, Qt::ToolTipRole).toString() == current_model_folder_) {
            model_->setCurrentIndex(i);
            break;
        }
}

void ParetoPanel::reload() {
    runs_.clear();
    if (db_path_.isEmpty() || !QFileInfo::exists(db_path_)) {
        fillModels();
        status_->setText(db_path_.isEmpty() ? tr("No results database chosen.")
                                            : tr("%1 does not exist yet: run an evaluation in the Eval tab.")
                                                  .arg(QDir::toNativeSeparators(db_path_)));
        plot_->setData({});
        return;
    }
    try {
        runs_ = load_runs(db_path_.toStdString());
    } catch (const std::exception& e) {
        fillModels();
        plot_->setData({});
        reportError(tr("Cannot read the results"), QString::fromStdString(e.what()));
        return;
    }
    fillModels();
    rebuild();
}

void ParetoPanel::fillModels() {
    const QString previous = model_->currentData().toString();
    filling_ = true;
    model_->clear();
    std::map<std::string, std::string> models;  // hash -> latest path
    for (const RunDetail& d : runs_) models[d.summary.model_hash] = d.summary.model_path;
    int preferred = -1;
    for (const auto& [hash, path] : models) {
        const QString folder = cleanFolder(QString::fromStdString(path));
        model_->addItem(QFileInfo(folder).fileName() + QStringLiteral("  (") + QString::fromStdString(hash.substr(0, 8)) +
                            QLatin1Char(')'),
                        QString::fromStdString(hash));
        model_->setItemData(model_->count() - 1, folder, Qt::ToolTipRole);
        if (QString::fromStdString(hash) == previous) preferred = model_->count() - 1;
        else if (preferred < 0 && folder == current_model_folder_) preferred = model_->count() - 1;
    }
    if (preferred >= 0) model_->setCurrentIndex(preferred);
    filling_ = false;
    fillDatasetsAndOptions();
}

void ParetoPanel::fillDatasetsAndOptions() {
    const QString previousDataset = dataset_->currentData().toString();
    const QString previousOptions = options_->currentData().toString();
    const std::string hash = model_->currentData().toString().toStdString();
    std::set<std::string> datasets;
    std::map<std::string, int64_t> options;  // canonical options -> latest run id
    for (const RunDetail& d : runs_) {
        if (d.summary.model_hash != hash || d.summary.task != "longbench") continue;
        datasets.insert(d.summary.dataset);
        int64_t& latest = options[d.options_json];
        latest = std::max(latest, d.summary.id);
    }
    filling_ = true;
    dataset_->clear();
    dataset_->addItem(tr("mean of datasets"), QString());
    for (const std::string& name : datasets) dataset_->addItem(QString::fromStdString(name), QString::fromStdString(name));
    const int datasetIndex = dataset_->findData(previousDataset);
    dataset_->setCurrentIndex(datasetIndex >= 0 ? datasetIndex : 0);

    options_->clear();
    int64_t newest = -1;
    int newestIndex = 0;
    for (const auto& [json, latest] : options) {
        options_->addItem(QString::fromStdString(options_summary(json)), QString::fromStdString(json));
        options_->setItemData(options_->count() - 1, QString::fromStdString(json), Qt::ToolTipRole);
        if (latest > newest) {
            newest = latest;
            newestIndex = options_->count() - 1;
        }
    }
    const int optionsIndex = options_->findData(previousOptions);
    options_->setCurrentIndex(optionsIndex >= 0 ? optionsIndex : newestIndex);  // default: the latest run's
    filling_ = false;
}

void ParetoPanel::setDataset(const QString& dataset) {
    const int index = dataset_->findData(dataset);
    if (index >= 0) dataset_->setCurrentIndex(index);
}

void ParetoPanel::rebuild() {
    ParetoQuery query;
    query.model_hash = model_->currentData().toString().toStdString();
    query.dataset = dataset_->currentData().toString().toStdString();
    query.options_json = options_->currentData().toString().toStdString();
    const ParetoData data = query.model_hash.empty() ? ParetoData{} : build_pareto(runs_, query);
    plot_->setData(data);
    if (data.points.empty()) {
        status_->setText(runs_.empty() ? tr("No runs in %1 yet: run an evaluation in the Eval tab.")
                                             .arg(QDir::toNativeSeparators(db_path_))
                                       : tr("No finished LongBench runs for this choice."));
        return;
    }
    int front = 0;
    for (const ParetoPoint& p : data.points) front += p.on_front;
    QString text = tr("%1 settings, %2 on the Pareto front; %3. Click a point to open its run in Results.")
                       .arg(data.points.size())
                       .arg(front)
                       .arg(data.baseline ? tr("dashed line: the original model")
                                          : tr("no run of the original model (strategy=full) for a baseline"));
    if (data.left_out > 0)
        text += tr(" %1 setting(s) lack a finished run on some dataset: pick a dataset to see them.").arg(data.left_out);
    status_->setText(text);
}

}  // namespace mlawb::gui
