#include "app/gui/panels/ModelPanel.h"

#include <QFont>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QStackedWidget>
#include <QTableWidget>
#include <QVBoxLayout>

namespace mlawb::gui {

namespace {

// English grouping regardless of the desktop's locale, so numbers read the same as the CLI's
// and the tests do not depend on the machine.
QString grouped(int64_t value) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(value)); }

// 4718848 -> "4.72 M (4,718,848)": the short form for reading, the exact one for comparing.
QString parameterText(int64_t count) {
    const double millions = static_cast<double>(count) / 1e6;
    const QString shortForm = millions >= 1000.0 ? QString::number(millions / 1000.0, 'f', 2) + QStringLiteral(" B")
                                                 : QString::number(millions, 'f', 2) + QStringLiteral(" M");
    return shortForm + QStringLiteral(" (") + grouped(count) + QStringLiteral(")");
}

// Binary units: checkpoint and cache sizes are compared with GPU memory, which is in GiB.
QString byteText(uint64_t bytes) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    if (unit == 0) return grouped(static_cast<int64_t>(bytes)) + QStringLiteral(" B");
    return QString::number(value, 'f', 2) + QLatin1Char(' ') + QLatin1String(units[unit]) + QStringLiteral(" (") +
           grouped(static_cast<int64_t>(bytes)) + QStringLiteral(" B)");
}

// Thetas are integers in every released config (10000, 500000, 1e6); print others exactly.
QString thetaText(double theta) {
    if (theta == static_cast<double>(static_cast<int64_t>(theta))) return grouped(static_cast<int64_t>(theta));
    return QString::number(theta, 'g', 12);
}

QString yesNo(bool value) { return value ? QStringLiteral("yes") : QStringLiteral("no"); }

QString ropeScalingText(const mlawb::RopeScaling& scaling) {
    QString text = QString::fromLatin1(mlawb::rope_type_name(scaling.type));
    if (scaling.type != mlawb::RopeScaling::Type::Default) text += QStringLiteral(" x") + QString::number(scaling.factor);
    if (scaling.type == mlawb::RopeScaling::Type::Llama3)
        text += QStringLiteral(" (low %1, high %2, original context %3)")
                    .arg(scaling.low_freq_factor)
                    .arg(scaling.high_freq_factor)
                    .arg(grouped(scaling.original_max_position_embeddings));
    return text;
}

enum LayerColumn { ColLayer, ColAttention, ColMlp, ColQHeads, ColKvHeads, ColHeadDim, ColKvElements, ColumnCount };

QTableWidgetItem* numberItem(int64_t value) {
    auto* item = new QTableWidgetItem(grouped(value));
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

}  // namespace

ModelPanel::ModelPanel(QWidget* parent) : QWidget(parent) {
    auto* hint = new QLabel(tr("No model loaded.\n\nUse File > Open model folder… or drop a checkpoint folder "
                               "(config.json + *.safetensors) onto this window."));
    hint->setAlignment(Qt::AlignCenter);
    hint->setWordWrap(true);

    pages_ = new QStackedWidget;
    pages_->addWidget(hint);
    pages_->addWidget(buildSummaryPage());

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(pages_);
}

QWidget* ModelPanel::buildSummaryPage() {
    auto* page = new QWidget;

    title_ = new QLabel;
    QFont titleFont = title_->font();
    titleFont.setBold(true);
    titleFont.setPointSizeF(titleFont.pointSizeF() * 1.2);
    title_->setFont(titleFont);
    title_->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* modelBox = new QGroupBox(tr("Model"));
    auto* modelForm = new QFormLayout(modelBox);
    addField(modelForm, QStringLiteral("architecture"), tr("Architecture"));
    addField(modelForm, QStringLiteral("attention"), tr("Attention"));
    addField(modelForm, QStringLiteral("parameters"), tr("Parameters"));
    addField(modelForm, QStringLiteral("layers"), tr("Layers"));
    addField(modelForm, QStringLiteral("hidden"), tr("Hidden size"));
    addField(modelForm, QStringLiteral("ffn"), tr("FFN size"));
    addField(modelForm, QStringLiteral("vocab"), tr("Vocabulary"));
    addField(modelForm, QStringLiteral("context"), tr("Context"));

    auto* attentionBox = new QGroupBox(tr("Attention and RoPE"));
    auto* attentionForm = new QFormLayout(attentionBox);
    addField(attentionForm, QStringLiteral("q_heads"), tr("Query heads"));
    addField(attentionForm, QStringLiteral("kv_heads"), tr("Key-value heads"));
    addField(attentionForm, QStringLiteral("head_dim"), tr("head_dim"));
    addField(attentionForm, QStringLiteral("rope_theta"), tr("RoPE theta"));
    addField(attentionForm, QStringLiteral("rope_scaling"), tr("RoPE scaling"));
    addField(attentionForm, QStringLiteral("sliding_window"), tr("Sliding window"));
    addField(attentionForm, QStringLiteral("tied_embeddings"), tr("Tied embeddings"));
    addField(attentionForm, QStringLiteral("qkv_bias"), tr("q/k/v biases"));

    auto* memoryBox = new QGroupBox(tr("Weights and KV cache"));
    auto* memoryForm = new QFormLayout(memoryBox);
    addField(memoryForm, QStringLiteral("weights_dtype"), tr("Weights dtype"));
    addField(memoryForm, QStringLiteral("weight_bytes"), tr("Weights size"));
    addField(memoryForm, QStringLiteral("weight_files"), tr("Weight files"));
    addField(memoryForm, QStringLiteral("kv_elements_per_token"), tr("KV elements / token"));
    addField(memoryForm, QStringLiteral("kv_bytes_per_token_stored"), tr("KV bytes / token (stored)"));
    addField(memoryForm, QStringLiteral("kv_bytes_per_token_fp16"), tr("KV bytes / token (fp16)"));

    auto* boxes = new QHBoxLayout;
    boxes->addWidget(modelBox, 1);
    boxes->addWidget(attentionBox, 1);
    boxes->addWidget(memoryBox, 1);

    layer_table_ = new QTableWidget(0, ColumnCount);
    layer_table_->setHorizontalHeaderLabels({tr("Layer"), tr("Attention params"), tr("MLP params"), tr("Q heads"),
                                             tr("KV heads"), tr("head_dim"), tr("KV elements / token")});
    layer_table_->verticalHeader()->setVisible(false);  // the Layer column already numbers rows
    // Compact rows (the style's default is ~30 px): an 80-layer model shows more at once.
    layer_table_->verticalHeader()->setDefaultSectionSize(layer_table_->fontMetrics().height() + 8);
    // Numbers are right-aligned so digits line up; the headers follow, or a wide column
    // leaves each number far from its caption.
    layer_table_->horizontalHeader()->setDefaultAlignment(Qt::AlignRight | Qt::AlignVCenter);
    layer_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    layer_table_->horizontalHeader()->setSectionResizeMode(ColLayer, QHeaderView::ResizeToContents);
    layer_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layer_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    layer_table_->setAlternatingRowColors(true);
    // As tall as its rows: a 6-layer model leaves the window's background below the table, not
    // an empty white grid; an 80-layer model still fills the window and scrolls.
    layer_table_->setSizeAdjustPolicy(QAbstractScrollArea::AdjustToContents);
    // Columns stretch to the width, and the info boxes above already set a wider minimum than
    // the table needs; a horizontal bar would only reserve an empty strip under the last row.
    layer_table_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    layer_table_->horizontalHeader()->setStyleSheet(QStringLiteral("QHeaderView::section { padding: 2px 6px; }"));

    auto* layersBox = new QGroupBox(tr("Layers"));
    auto* layersLayout = new QVBoxLayout(layersBox);
    layersLayout->addWidget(layer_table_);

    auto* layout = new QVBoxLayout(page);
    layout->addWidget(title_);
    layout->addLayout(boxes);
    layout->addWidget(layersBox);
    layout->addStretch(1);
    return page;
}

void ModelPanel::addField(QFormLayout* form, const QString& key, const QString& caption) {
    auto* value = new QLabel;
    value->setTextInteractionFlags(Qt::TextSelectableByMouse);  // users copy numbers into notes
    value->setObjectName(key);
    form->addRow(caption + QLatin1Char(':'), value);
    field_labels_.insert(key, value);
}

void ModelPanel::setField(const QString& key, const QString& text) {
    auto it = field_labels_.find(key);
    Q_ASSERT(it != field_labels_.end());  // a typo in a key is a programming error
    if (it != field_labels_.end()) it.value()->setText(text);
}

QString ModelPanel::fieldText(const QString& key) const {
    const QLabel* label = field_labels_.value(key, nullptr);
    return label ? label->text() : QString();
}

bool ModelPanel::hasSummary() const { return pages_->currentIndex() == 1; }

void ModelPanel::clear() {
    for (QLabel* label : field_labels_) label->clear();
    title_->clear();
    layer_table_->setRowCount(0);
    pages_->setCurrentIndex(0);
}

void ModelPanel::showSummary(const mlawb::ModelSummary& summary) {
    const mlawb::ModelConfig& c = summary.config;
    title_->setText(summary.config_only ? QString::fromStdString(c.source) + tr("  (config only)")
                                        : QString::fromStdString(summary.folder));

    setField(QStringLiteral("architecture"), QStringLiteral("%1 (model_type %2)")
                                                 .arg(QString::fromStdString(c.architecture),
                                                      QString::fromStdString(c.model_type)));
    setField(QStringLiteral("attention"), c.is_mha() ? tr("MHA")
                                                     : tr("GQA, %1 query heads per KV head").arg(c.group_size()));
    setField(QStringLiteral("parameters"), parameterText(summary.parameter_count));
    setField(QStringLiteral("layers"), QString::number(c.n_layer));
    setField(QStringLiteral("hidden"), grouped(c.hidden));
    setField(QStringLiteral("ffn"), grouped(c.ffn));
    setField(QStringLiteral("vocab"), grouped(c.vocab));
    setField(QStringLiteral("context"), grouped(c.max_position));

    setField(QStringLiteral("q_heads"), QString::number(c.n_head));
    setField(QStringLiteral("kv_heads"), QString::number(c.n_kv_head));
    setField(QStringLiteral("head_dim"), QString::number(c.head_dim));
    setField(QStringLiteral("rope_theta"), thetaText(c.rope_theta));
    setField(QStringLiteral("rope_scaling"), ropeScalingText(c.rope_scaling));
    setField(QStringLiteral("sliding_window"), c.sliding_window > 0 ? grouped(c.sliding_window) : tr("none (full attention)"));
    setField(QStringLiteral("tied_embeddings"), yesNo(c.tie_word_embeddings));
    setField(QStringLiteral("qkv_bias"), yesNo(c.qkv_bias));

    const int storedBytes = summary.stored_bytes_per_element();
    const QString storedDtype = QString::fromStdString(summary.weights_dtype.empty() ? c.stored_dtype
                                                                                     : summary.weights_dtype);
    if (summary.config_only) {
        setField(QStringLiteral("weights_dtype"), storedDtype + tr(" (from config.json)"));
        setField(QStringLiteral("weight_bytes"), tr("not read (config only)"));
        setField(QStringLiteral("weight_files"), tr("not read (config only)"));
    } else {
        setField(QStringLiteral("weights_dtype"), storedDtype);
        setField(QStringLiteral("weight_bytes"), byteText(summary.weight_bytes));
        setField(QStringLiteral("weight_files"), QString::number(summary.weight_files));
    }
    setField(QStringLiteral("kv_elements_per_token"), grouped(summary.kv_elements_per_token()) + tr(" (K+V, all layers)"));
    setField(QStringLiteral("kv_bytes_per_token_stored"),
             byteText(static_cast<uint64_t>(summary.kv_bytes_per_token(storedBytes))) +
                 QStringLiteral(" at %1 B/element").arg(storedBytes));
    setField(QStringLiteral("kv_bytes_per_token_fp16"),
             byteText(static_cast<uint64_t>(summary.kv_bytes_per_token(2))));

    fillLayerTable(summary);
    pages_->setCurrentIndex(1);
}

void ModelPanel::fillLayerTable(const mlawb::ModelSummary& summary) {
    layer_table_->setRowCount(static_cast<int>(summary.layers.size()));
    for (int row = 0; row < layer_table_->rowCount(); ++row) {
        const mlawb::LayerSummary& layer = summary.layers[static_cast<size_t>(row)];
        layer_table_->setItem(row, ColLayer, numberItem(layer.index));
        layer_table_->setItem(row, ColAttention, numberItem(layer.attention_params));
        layer_table_->setItem(row, ColMlp, numberItem(layer.mlp_params));
        layer_table_->setItem(row, ColQHeads, numberItem(layer.q_heads));
        layer_table_->setItem(row, ColKvHeads, numberItem(layer.kv_heads));
        layer_table_->setItem(row, ColHeadDim, numberItem(layer.head_dim));
        layer_table_->setItem(row, ColKvElements, numberItem(layer.kv_elements_per_token));
    }
}

}  // namespace mlawb::gui
