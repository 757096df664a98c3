#include "app/gui/panels/SettingsPanel.h"

#include "analysis/strategies.h"
#include "app/gui/GuiSetting.h"
#include "app/gui/workers/BackgroundJob.h"

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <memory>

namespace mlawb::gui {

namespace {

const QString kDash = QStringLiteral("—");

QString grouped(int64_t value) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(value)); }

// Bytes per token: exact, with decimals only where packing leaves a fraction (2-bit values).
QString tokenBytes(double bytes) {
    const bool whole = bytes == std::floor(bytes);
    return (whole ? grouped(static_cast<int64_t>(bytes)) : QString::number(bytes, 'f', 2)) + QStringLiteral(" B");
}

// Cache totals in binary units, as GPU memory is counted.
QString totalBytes(double bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int unit = 0;
    while (bytes >= 1024.0 && unit < 4) {
        bytes /= 1024.0;
        ++unit;
    }
    return QString::number(bytes, 'f', unit == 0 ? 0 : 2) + QLatin1Char(' ') + QLatin1String(units[unit]);
}

QString percent(double value) { return QString::number(value, 'f', 2) + QLatin1Char('%'); }

QString pairList(const std::vector<int64_t>& pairs) {
    QStringList parts;
    for (int64_t k : pairs) parts.append(QString::number(k));
    return parts.join(QStringLiteral(", "));
}

enum LayerColumn { ColLayer, ColPairs, ColError, ColErrorBar, ColumnCount };

}  // namespace

SettingsPanel::SettingsPanel(QWidget* parent) : QWidget(parent) {
    convert_job_ = new BackgroundJob(this);
    auto* layout = new QHBoxLayout(this);
    layout->addWidget(buildControls(), 0);
    layout->addWidget(buildFigures(), 1);
    setEnabled(false);  // until a model is loaded
    validation_label_->setText(tr("Open a model to choose a setting."));
}

QWidget* SettingsPanel::buildControls() {
    auto* box = new QGroupBox(tr("Setting"));
    box->setMinimumWidth(440);
    auto* form = new QFormLayout(box);

    strategy_combo_ = new QComboBox;
    for (const StrategyInfo& s : strategy_registry()) {
        strategy_combo_->addItem(QString::fromStdString(s.name));
        strategy_combo_->setItemData(strategy_combo_->count() - 1, QString::fromStdString(s.description), Qt::ToolTipRole);
    }
    strategy_description_ = new QLabel;
    strategy_description_->setWordWrap(true);
    strategy_description_->setStyleSheet(QStringLiteral("color: palette(mid);"));
    form->addRow(tr("Strategy"), strategy_combo_);
    form->addRow(QString(), strategy_description_);

    const auto sliderRow = [&](QSlider*& slider, QSpinBox*& spin, const QString& caption, const QString& tip) {
        slider = new QSlider(Qt::Horizontal);
        spin = new QSpinBox;
        slider->setToolTip(tip);
        spin->setToolTip(tip);
        auto* row = new QHBoxLayout;
        row->addWidget(slider, 1);
        row->addWidget(spin);
        form->addRow(caption, row);
        connectSliderAndSpin(slider, spin);
    };
    sliderRow(r_slider_, r_spin_, tr("r (RoPE pairs)"), tr("RoPE pairs kept per KV head, 1..head_dim/2"));
    start_spin_ = new QSpinBox;
    start_spin_->setToolTip(tr("First pair of the uniform strategy"));
    form->addRow(tr("Start (uniform)"), start_spin_);
    sliderRow(d_kv_slider_, d_kv_spin_, tr("d_kv (latent)"),
              tr("Latent width per KV head; the slider stops at the largest d_kv the SVD allows, the box goes "
                 "further and shows why a wider latent is refused"));

    svd_combo_ = new QComboBox;
    svd_combo_->addItem(QStringLiteral("joint"), static_cast<int>(SvdMode::Joint));
    svd_combo_->addItem(QStringLiteral("split"), static_cast<int>(SvdMode::Split));
    svd_combo_->addItem(QStringLiteral("none"), static_cast<int>(SvdMode::None));
    form->addRow(tr("SVD"), svd_combo_);
    kv_bits_combo_ = new QComboBox;
    for (int bits : {16, 8, 4, 2}) kv_bits_combo_->addItem(QString::number(bits), bits);
    form->addRow(tr("KV bits"), kv_bits_combo_);
    context_spin_ = new QSpinBox;
    context_spin_->setRange(1, 1 << 24);
    context_spin_->setSingleStep(1024);
    context_spin_->setGroupSeparatorShown(true);
    context_spin_->setValue(4096);
    form->addRow(tr("Context (tokens)"), context_spin_);
    batch_spin_ = new QSpinBox;
    batch_spin_->setRange(1, 4096);
    form->addRow(tr("Batch"), batch_spin_);

    spec_line_ = new QLineEdit;
    spec_line_->setReadOnly(true);
    spec_line_->setToolTip(tr("The canonical setting, as --mla takes it"));
    auto* copy = new QPushButton(tr("Copy"));
    connect(copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(spec_line_->text()); });
    auto* specRow = new QHBoxLayout;
    specRow->addWidget(spec_line_, 1);
    specRow->addWidget(copy);
    form->addRow(new QLabel(tr("Setting (--mla):")));
    form->addRow(specRow);  // full width: the whole string stays readable

    convert_button_ = new QPushButton(tr("Convert and save…"));
    convert_button_->setToolTip(tr("Convert the model with this setting and write a folder that mlawb and the "
                                   "workbench open as an MLA model"));
    evaluate_button_ = new QPushButton(tr("Evaluate this setting"));
    evaluate_button_->setToolTip(tr("Open the Eval tab with this setting"));
    convert_button_->setEnabled(false);
    evaluate_button_->setEnabled(false);
    connect(convert_button_, &QPushButton::clicked, this, &SettingsPanel::chooseConvertFolder);
    connect(evaluate_button_, &QPushButton::clicked, this, [this] { Q_EMIT evaluateRequested(specText()); });
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(convert_button_);
    buttons->addWidget(evaluate_button_);
    form->addRow(buttons);
    convert_progress_ = new QProgressBar;
    convert_progress_->setRange(0, 1);
    convert_progress_->setValue(0);
    convert_progress_->setFormat(QStringLiteral("%v / %m layers"));
    cancel_convert_button_ = new QPushButton(tr("Cancel"));
    cancel_convert_button_->setEnabled(false);
    connect(cancel_convert_button_, &QPushButton::clicked, this, &SettingsPanel::cancelConvert);
    // Shown while a conversion runs; the status line below says how it ended.
    auto* convertRow = new QWidget;
    auto* convertLayout = new QHBoxLayout(convertRow);
    convertLayout->setContentsMargins(0, 0, 0, 0);
    convertLayout->addWidget(convert_progress_, 1);
    convertLayout->addWidget(cancel_convert_button_);
    convertRow->setVisible(false);
    convert_row_ = convertRow;
    form->addRow(convertRow);
    convert_status_ = new QLabel;
    convert_status_->setWordWrap(true);
    convert_status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    form->addRow(convert_status_);
    connect(convert_job_, &BackgroundJob::progressed, this, [this](qint64 done, qint64 total) {
        convert_progress_->setRange(0, static_cast<int>(total));
        convert_progress_->setValue(static_cast<int>(done));
    });
    connect(convert_job_, &BackgroundJob::finished, this, [this](bool ok, bool cancelled, const QString& message) {
        cancel_convert_button_->setEnabled(false);
        convert_row_->setVisible(false);
        convert_progress_->setRange(0, 1);
        convert_progress_->setValue(ok ? 1 : 0);
        const QString folder = convert_job_->property("out").toString();
        if (ok) convert_status_->setText(tr("Wrote %1: open it with File > Open model folder.").arg(QDir::toNativeSeparators(folder)));
        else if (cancelled) convert_status_->setText(tr("Conversion cancelled; nothing was written."));
        else {
            convert_status_->setText(message);
            Q_EMIT errorReported(message);
        }
        updateButtons();
        Q_EMIT convertFinished(ok, ok ? folder : message);
    });

    connect(strategy_combo_, &QComboBox::currentIndexChanged, this, &SettingsPanel::refresh);
    connect(svd_combo_, &QComboBox::currentIndexChanged, this, &SettingsPanel::refresh);
    connect(kv_bits_combo_, &QComboBox::currentIndexChanged, this, &SettingsPanel::refresh);
    for (QSpinBox* spin : {r_spin_, start_spin_, d_kv_spin_, context_spin_, batch_spin_})
        connect(spin, &QSpinBox::valueChanged, this, &SettingsPanel::refresh);
    return box;
}

QWidget* SettingsPanel::buildFigures() {
    auto* column = new QWidget;
    auto* layout = new QVBoxLayout(column);
    layout->setContentsMargins(0, 0, 0, 0);

    validation_label_ = new QLabel;
    validation_label_->setWordWrap(true);
    validation_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    validation_label_->setStyleSheet(QStringLiteral("QLabel { color: #c62828; font-weight: bold; }"));
    layout->addWidget(validation_label_);

    auto* memoryBox = new QGroupBox(tr("KV cache"));
    auto* form = new QFormLayout(memoryBox);
    addField(form, QStringLiteral("layout"), tr("Layout"));
    addField(form, QStringLiteral("kept_pairs"), tr("Kept RoPE pairs"));
    addField(form, QStringLiteral("elements_layer"), tr("Elements / token / layer"));
    addField(form, QStringLiteral("elements_model"), tr("Elements / token (model)"));
    addField(form, QStringLiteral("bytes_layer"), tr("Bytes / token / layer"));
    addField(form, QStringLiteral("bytes_model"), tr("Bytes / token (model)"));
    addField(form, QStringLiteral("bytes_total"), tr("At context x batch"));
    addField(form, QStringLiteral("reduction"), tr("Reduction vs original"));
    figures_box_ = memoryBox;
    layout->addWidget(memoryBox);

    auto* layerBox = new QGroupBox(tr("Per layer"));
    auto* layerLayout = new QVBoxLayout(layerBox);
    error_source_label_ = new QLabel;
    error_source_label_->setWordWrap(true);
    layerLayout->addWidget(error_source_label_);
    layer_table_ = new QTableWidget(0, ColumnCount);
    layer_table_->setHorizontalHeaderLabels(
        {tr("Layer"), tr("RoPE pairs, KV head 0"), tr("Approximation error"), tr("0 – 100%")});
    layer_table_->verticalHeader()->setVisible(false);
    layer_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layer_table_->horizontalHeader()->setSectionResizeMode(ColPairs, QHeaderView::Stretch);
    layer_table_->horizontalHeader()->setSectionResizeMode(ColErrorBar, QHeaderView::Fixed);
    layer_table_->setColumnWidth(ColError, 150);
    layer_table_->setColumnWidth(ColErrorBar, 220);
    layerLayout->addWidget(layer_table_);
    layout->addWidget(layerBox, 1);
    return column;
}

void SettingsPanel::addField(QFormLayout* form, const QString& key, const QString& caption) {
    auto* value = new QLabel(kDash);
    value->setTextInteractionFlags(Qt::TextSelectableByMouse);
    form->addRow(caption + QLatin1Char(':'), value);
    field_labels_.insert(key, value);
}

void SettingsPanel::setField(const QString& key, const QString& text) { field_labels_.value(key)->setText(text); }

QString SettingsPanel::fieldText(const QString& key) const {
    const QLabel* label = field_labels_.value(key);
    return label ? label->text() : QString();
}

void SettingsPanel::connectSliderAndSpin(QSlider* slider, QSpinBox* spin) {
    // The spin box holds the value (its range may exceed the slider's, to show refusals).
    connect(slider, &QSlider::valueChanged, spin, &QSpinBox::setValue);
    connect(spin, &QSpinBox::valueChanged, slider, [slider](int value) {
        const QSignalBlocker block(slider);
        slider->setValue(value);
    });
}

void SettingsPanel::setModelConfig(const ModelConfig& config) {
    building_ = true;
    model_.setConfig(config);
    const int pairs = static_cast<int>(config.head_dim / 2);
    r_slider_->setRange(1, std::max(1, pairs));
    r_spin_->setRange(1, std::max(1, pairs));
    r_spin_->setValue(std::min(4, pairs));
    start_spin_->setRange(0, std::max(0, pairs - 1));
    start_spin_->setValue(0);
    // The box admits up to 2 head_dim (K plus V of a head, past which a latent saves nothing) even
    // where the SVD's rank allows less, so a too-wide latent shows validation's reason.
    d_kv_spin_->setRange(1, static_cast<int>(std::max<int64_t>(2, 2 * config.head_dim)));
    d_kv_spin_->setValue(16);
    strategy_combo_->setCurrentText(QStringLiteral("high"));
    svd_combo_->setCurrentIndex(0);
    kv_bits_combo_->setCurrentIndex(0);
    context_spin_->setValue(static_cast<int>(std::min<int64_t>(4096, std::max<int64_t>(1, config.max_position))));
    layer_table_->setRowCount(static_cast<int>(config.n_layer));
    for (int row = 0; row < layer_table_->rowCount(); ++row) {
        auto* layer = new QTableWidgetItem(QString::number(row));
        layer->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        layer_table_->setItem(row, ColLayer, layer);
        layer_table_->setItem(row, ColPairs, new QTableWidgetItem);
        auto* error = new QTableWidgetItem;
        error->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        layer_table_->setItem(row, ColError, error);
        auto* bar = new QProgressBar;  // the error as a bar, 0..100% in 0.01% steps
        bar->setRange(0, 10000);
        bar->setTextVisible(false);
        layer_table_->setCellWidget(row, ColErrorBar, bar);
    }
    setEnabled(true);
    building_ = false;
    refresh();
}

void SettingsPanel::setScores(std::optional<RopeScores> scores) {
    model_.setScores(std::move(scores));
    refresh();
}

void SettingsPanel::setSpectrum(SpectrumReport report, const MlaSpec& mask_spec) {
    model_.setSpectrum(std::move(report), mask_spec);
    refresh();
}

void SettingsPanel::setStrategy(const QString& name) { strategy_combo_->setCurrentText(name); }

void SettingsPanel::setSvdMode(SvdMode mode) { svd_combo_->setCurrentIndex(svd_combo_->findData(static_cast<int>(mode))); }

void SettingsPanel::setKvBits(int bits) { kv_bits_combo_->setCurrentIndex(kv_bits_combo_->findData(bits)); }

SettingsInput SettingsPanel::currentInput() const {
    SettingsInput input;
    MlaSpec& spec = input.spec;
    spec.strategy = strategy_combo_->currentText().toStdString();
    spec.r = spec.strategy == "full" ? -1 : r_spin_->value();
    spec.start = spec.strategy == "uniform" ? start_spin_->value() : 0;
    spec.svd = static_cast<SvdMode>(svd_combo_->currentData().toInt());
    spec.d_kv = spec.svd == SvdMode::None ? -1 : d_kv_spin_->value();
    spec.kv_bits = kv_bits_combo_->currentData().toInt();
    input.context_tokens = context_spin_->value();
    input.batch = batch_spin_->value();
    return input;
}

void SettingsPanel::updateControlStates() {
    const QString strategy = strategy_combo_->currentText();
    r_slider_->setEnabled(strategy != QStringLiteral("full"));
    r_spin_->setEnabled(strategy != QStringLiteral("full"));
    start_spin_->setEnabled(strategy == QStringLiteral("uniform"));
    const bool latent = static_cast<SvdMode>(svd_combo_->currentData().toInt()) != SvdMode::None;
    d_kv_slider_->setEnabled(latent);
    d_kv_spin_->setEnabled(latent);
    strategy_description_->setText(strategy_combo_->currentData(Qt::ToolTipRole).toString());
}

void SettingsPanel::refresh() {
    if (building_ || !model_.hasConfig()) return;
    updateControlStates();
    figures_ = model_.evaluate(currentInput());
    if (figures_.max_d_kv > 0) {
        const QSignalBlocker block(d_kv_slider_);
        d_kv_slider_->setRange(1, static_cast<int>(figures_.max_d_kv));
        d_kv_slider_->setValue(d_kv_spin_->value());
    }
    showFigures();
    showLayers();
    updateButtons();
    ++update_count_;
    Q_EMIT figuresUpdated();
}

void SettingsPanel::showFigures() {
    spec_line_->setText(QString::fromStdString(figures_.spec_text));
    spec_line_->setCursorPosition(0);  // show the start, where the strategy is
    validation_label_->setText(figures_.valid ? QString() : QString::fromStdString(figures_.message));
    validation_label_->setVisible(!figures_.valid);
    figures_box_->setEnabled(figures_.valid);
    if (!figures_.valid) {
        for (QLabel* label : field_labels_) label->setText(kDash);
        return;
    }
    const MemoryEstimate& m = figures_.memory;
    setField(QStringLiteral("layout"), QString::fromLatin1(m.layout));
    setField(QStringLiteral("kept_pairs"),
             tr("%1 of %2 pairs per KV head keep RoPE").arg(m.kept_pairs).arg(figures_.pairs_per_head));
    setField(QStringLiteral("elements_layer"), tr("%1 per token (original %2)")
                                                   .arg(grouped(m.elements_per_token_layer),
                                                        grouped(m.original_elements_per_token_layer)));
    setField(QStringLiteral("elements_model"),
             tr("%1 per token (original %2)").arg(grouped(m.elements_per_token), grouped(m.original_elements_per_token)));
    const auto bytesLine = [&](double nominal, double real, double original, const QString& format) {
        return tr("nominal %1 · real %2 at %3 bits (original %4 at 16 bits)")
            .arg(format == QLatin1String("token") ? tokenBytes(nominal) : totalBytes(nominal),
                 format == QLatin1String("token") ? tokenBytes(real) : totalBytes(real), QString::number(m.kv_bits),
                 format == QLatin1String("token") ? tokenBytes(original) : totalBytes(original));
    };
    setField(QStringLiteral("bytes_layer"), bytesLine(m.nominal_bytes_per_token_layer, m.real_bytes_per_token_layer,
                                                      m.original_bytes_per_token_layer, QStringLiteral("token")));
    setField(QStringLiteral("bytes_model"), bytesLine(m.nominal_bytes_per_token, m.real_bytes_per_token,
                                                      m.original_bytes_per_token, QStringLiteral("token")));
    setField(QStringLiteral("bytes_total"),
             tr("%1 tokens x %2: ").arg(grouped(m.context_tokens), grouped(m.batch)) +
                 bytesLine(m.nominal_total_bytes, m.real_total_bytes, m.original_total_bytes, QStringLiteral("total")));
    setField(QStringLiteral("reduction"), tr("%1 nominal · %2 real per token · %3 real at context x batch")
                                              .arg(percent(m.reduction_percent), percent(m.reduction_percent_real),
                                                   percent(m.total_reduction_percent_real)));
}

void SettingsPanel::showLayers() {
    QString source;
    switch (figures_.error_source) {
    case ErrorSource::NoSpectrum:
        source = tr("Approximation error: no spectrum loaded (compute one in the Spectrum tab).");
        break;
    case ErrorSource::NoLatent:
        source = tr("Approximation error: svd=none factorizes nothing, so the error is 0.");
        break;
    case ErrorSource::SameMask:
        source = tr("%1 approximation error at rank %2, from the spectrum computed for this mask (%3).")
                     .arg(figures_.memory.layout, QString::number(figures_.error_rank),
                          QString::fromStdString(figures_.spectrum_mask));
        break;
    case ErrorSource::OtherMask:
        source = tr("%1 approximation error at rank %2, from the spectrum of ANOTHER mask (%3): W_k,nope depends on "
                    "the kept pairs, so these are indicative only; recompute in the Spectrum tab.")
                     .arg(figures_.memory.layout, QString::number(figures_.error_rank),
                          QString::fromStdString(figures_.spectrum_mask));
        break;
    }
    error_source_label_->setText(figures_.valid ? source : QString());
    error_source_label_->setStyleSheet(figures_.error_source == ErrorSource::OtherMask
                                           ? QStringLiteral("QLabel { color: #b26a00; }")
                                           : QString());
    for (int row = 0; row < layer_table_->rowCount(); ++row) {
        const bool have = figures_.valid && row < static_cast<int>(figures_.layers.size());
        const LayerFigures* layer = have ? &figures_.layers[static_cast<size_t>(row)] : nullptr;
        layer_table_->item(row, ColPairs)->setText(layer ? pairList(layer->kept_pairs_head0) : QString());
        auto* bar = static_cast<QProgressBar*>(layer_table_->cellWidget(row, ColErrorBar));
        const bool known = layer && layer->has_error;
        bar->setValue(known ? static_cast<int>(std::lround(layer->approximation_error * 10000.0)) : 0);
        layer_table_->item(row, ColError)->setText(known ? percent(layer->approximation_error * 100.0) : kDash);
    }
}

void SettingsPanel::updateButtons() {
    const bool valid = model_.hasConfig() && figures_.valid;
    evaluate_button_->setEnabled(valid);
    const bool original = figures_.memory.layout == QLatin1String("MHA") || figures_.memory.layout == QLatin1String("GQA");
    convert_button_->setEnabled(valid && !original && !model_folder_.isEmpty() && !convert_job_->isRunning());
}

void SettingsPanel::chooseConvertFolder() {
    const QString name = QFileInfo(model_folder_).fileName() + QStringLiteral("-mla");
    const QString start = QFileInfo(model_folder_).absolutePath() + QLatin1Char('/') + name;
    const QString folder = QFileDialog::getSaveFileName(this, tr("Save the MLA model as a new folder"), start, QString(),
                                                        nullptr, QFileDialog::ShowDirsOnly);
    if (!folder.isEmpty()) startConvert(folder);
}

bool SettingsPanel::isConverting() const { return convert_job_->isRunning(); }

void SettingsPanel::cancelConvert() { convert_job_->cancel(); }

QString SettingsPanel::convertStatusText() const { return convert_status_->text(); }

bool SettingsPanel::startConvert(const QString& outFolder) {
    if (model_folder_.isEmpty() || !figures_.valid || convert_job_->isRunning()) return false;
    ConvertRequest request;
    request.model_folder = model_folder_.toStdString();
    request.out_folder = QDir::cleanPath(QFileInfo(outFolder).absoluteFilePath()).toStdString();
    request.spec = figures_.spec_text;
    request.scores = model_.scores();
    const bool started = convert_job_->start([request](const JobControl& control) {
        auto result = std::make_shared<ConvertResult>(convert_and_save(request, control.progress, control.cancelled));
        return std::function<void()>([result] {});
    });
    if (!started) return false;
    convert_job_->setProperty("out", QString::fromStdString(request.out_folder));
    convert_progress_->setRange(0, 0);
    cancel_convert_button_->setEnabled(true);
    convert_row_->setVisible(true);
    convert_status_->setText(tr("Converting to %1…").arg(QDir::toNativeSeparators(QString::fromStdString(request.out_folder))));
    updateButtons();
    return true;
}

QVariantMap SettingsPanel::saveState() const {
    QVariantMap state;
    state.insert(QStringLiteral("strategy"), strategy_combo_->currentText());
    state.insert(QStringLiteral("r"), r_spin_->value());
    state.insert(QStringLiteral("start"), start_spin_->value());
    state.insert(QStringLiteral("d_kv"), d_kv_spin_->value());
    state.insert(QStringLiteral("svd"), svd_combo_->currentText());
    state.insert(QStringLiteral("kv_bits"), kv_bits_combo_->currentData().toInt());
    state.insert(QStringLiteral("context"), context_spin_->value());
    state.insert(QStringLiteral("batch"), batch_spin_->value());
    return state;
}

void SettingsPanel::restoreState(const QVariantMap& state) {
    if (state.isEmpty()) return;
    building_ = true;  // one refresh at the end
    if (strategy_combo_->findText(state.value(QStringLiteral("strategy")).toString()) >= 0)
        strategy_combo_->setCurrentText(state.value(QStringLiteral("strategy")).toString());
    if (svd_combo_->findText(state.value(QStringLiteral("svd")).toString()) >= 0)
        svd_combo_->setCurrentText(state.value(QStringLiteral("svd")).toString());
    const int bits = kv_bits_combo_->findData(state.value(QStringLiteral("kv_bits")).toInt());
    if (bits >= 0) kv_bits_combo_->setCurrentIndex(bits);
    const auto restoreSpin = [&](QSpinBox* spin, const char* key) {
        if (state.contains(QLatin1String(key))) spin->setValue(state.value(QLatin1String(key)).toInt());
    };
    restoreSpin(r_spin_, "r");
    restoreSpin(start_spin_, "start");
    restoreSpin(d_kv_spin_, "d_kv");
    restoreSpin(context_spin_, "context");
    restoreSpin(batch_spin_, "batch");
    building_ = false;
    refresh();
}

QString SettingsPanel::validationText() const { return validation_label_->isVisibleTo(this) ? validation_label_->text() : QString(); }

QString SettingsPanel::specText() const { return spec_line_->text(); }

QString SettingsPanel::errorSourceText() const { return error_source_label_->text(); }

}  // namespace mlawb::gui
