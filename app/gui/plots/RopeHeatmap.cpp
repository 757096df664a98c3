#include "app/gui/plots/RopeHeatmap.h"

#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace mlawb::gui {

QString ropeQuantityName(RopeQuantity quantity) {
    switch (quantity) {
        case RopeQuantity::Score: return QStringLiteral("score");
        case RopeQuantity::QNorm: return QStringLiteral("Qn");
        case RopeQuantity::KNorm: return QStringLiteral("Kn");
    }
    return {};
}

RopeHeatmap::RopeHeatmap(QWidget* parent) : QCustomPlot(parent) {
    setMinimumSize(480, 320);
    xAxis->setLabel(tr("RoPE pair k (0 = highest frequency)"));
    yAxis->setLabel(tr("layer"));
    map_ = new QCPColorMap(xAxis, yAxis);
    map_->setInterpolate(false);
    scale_ = new QCPColorScale(this);
    plotLayout()->addElement(0, 1, scale_);
    scale_->setType(QCPAxis::atRight);
    map_->setColorScale(scale_);
    map_->setGradient(QCPColorGradient(QCPColorGradient::gpThermal));
    // The colour scale's margins follow the plot's, so the two line up vertically.
    auto* margins = new QCPMarginGroup(this);
    axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
    scale_->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
    setMouseTracking(true);
    connect(this, &QCustomPlot::mouseMove, this, &RopeHeatmap::showHoverToolTip);
}

void RopeHeatmap::setData(const mlawb::RopeScores& scores, const mlawb::KeptPairs& kept) {
    scores_ = scores;
    kept_ = kept;
    redraw();
}

void RopeHeatmap::setKeptPairs(const mlawb::KeptPairs& kept) {
    kept_ = kept;
    redraw();
}

void RopeHeatmap::setView(RopeQuantity quantity, int64_t head) {
    quantity_ = quantity;
    head_ = head;
    redraw();
}

int64_t RopeHeatmap::outlinedKvHead() const {
    if (quantity_ != RopeQuantity::QNorm || scores_.n_kv_head == 0) return head_;
    // transformers' repeat_kv order: query head h reads KV head h / (n_head / n_kv_head).
    return head_ / (scores_.n_head / scores_.n_kv_head);
}

double RopeHeatmap::valueAt(int64_t layer, int64_t pair) const {
    switch (quantity_) {
        case RopeQuantity::Score: return scores_.score(layer, head_, pair);
        case RopeQuantity::QNorm: return scores_.q_norm(layer, head_, pair);
        case RopeQuantity::KNorm: return scores_.k_norm(layer, head_, pair);
    }
    return 0.0;
}

void RopeHeatmap::redraw() {
    clearItems();
    outlined_.clear();
    const int64_t heads = quantity_ == RopeQuantity::QNorm ? scores_.n_head : scores_.n_kv_head;
    head_ = std::clamp<int64_t>(head_, 0, std::max<int64_t>(heads - 1, 0));
    if (!hasData()) {
        map_->data()->clear();
        replot();
        return;
    }
    const int64_t layers = scores_.n_layer, pairs = scores_.n_pairs;
    map_->data()->setSize(static_cast<int>(pairs), static_cast<int>(layers));
    // Cells centred on integer coordinates: pair k spans [k - 0.5, k + 0.5].
    map_->data()->setRange(QCPRange(0, static_cast<double>(pairs - 1)), QCPRange(0, static_cast<double>(layers - 1)));
    for (int64_t l = 0; l < layers; ++l)
        for (int64_t k = 0; k < pairs; ++k)
            map_->data()->setCell(static_cast<int>(k), static_cast<int>(l), valueAt(l, k));
    map_->rescaleDataRange(true);
    scale_->axis()->setLabel(QStringLiteral("%1 (%2 head %3)")
                                 .arg(ropeQuantityName(quantity_),
                                      quantity_ == RopeQuantity::QNorm ? tr("query") : tr("KV"))
                                 .arg(head_));

    const int64_t g = outlinedKvHead();
    const bool outline = kept_.n_layer == layers && kept_.n_pairs == pairs && g < kept_.n_kv_head;
    for (int64_t l = 0; outline && l < layers; ++l)
        for (int64_t k : kept_.pairs(l, g)) {
            auto* rect = new QCPItemRect(this);
            rect->topLeft->setCoords(k - 0.5, l + 0.5);
            rect->bottomRight->setCoords(k + 0.5, l - 0.5);
            rect->setPen(QPen(Qt::cyan, 2));
            rect->setBrush(Qt::NoBrush);
            outlined_.emplace_back(l, k);
        }
    xAxis->setRange(-0.5, pairs - 0.5);
    yAxis->setRange(-0.5, layers - 0.5);
    replot();
}

QString RopeHeatmap::hoverText(double x, double y) const {
    if (!hasData()) return {};
    const auto pair = static_cast<int64_t>(std::lround(x));
    const auto layer = static_cast<int64_t>(std::lround(y));
    if (pair < 0 || pair >= scores_.n_pairs || layer < 0 || layer >= scores_.n_layer) return {};
    const bool kept = std::find(outlined_.begin(), outlined_.end(), std::make_pair(layer, pair)) != outlined_.end();
    return tr("layer %1, pair %2: %3 %4%5")
        .arg(layer)
        .arg(pair)
        .arg(ropeQuantityName(quantity_))
        .arg(valueAt(layer, pair), 0, 'g', 5)
        .arg(kept ? tr(" (kept)") : QString());
}

void RopeHeatmap::showHoverToolTip(QMouseEvent* event) {
    const QPointF pos = event->position();
    const QString text = hoverText(xAxis->pixelToCoord(pos.x()), yAxis->pixelToCoord(pos.y()));
    if (text.isEmpty()) QToolTip::hideText();
    else QToolTip::showText(event->globalPosition().toPoint(), text, this);
}

PlotTable RopeHeatmap::table() const {
    PlotTable t;
    const QString headKind = quantity_ == RopeQuantity::QNorm ? QStringLiteral("query_head") : QStringLiteral("kv_head");
    t.header = {QStringLiteral("layer"), QStringLiteral("pair"), headKind, ropeQuantityName(quantity_),
                QStringLiteral("kept")};
    for (int64_t l = 0; l < scores_.n_layer; ++l)
        for (int64_t k = 0; k < scores_.n_pairs; ++k) {
            const bool kept =
                std::find(outlined_.begin(), outlined_.end(), std::make_pair(l, k)) != outlined_.end();
            t.rows.push_back({QString::number(l), QString::number(k), QString::number(head_),
                              QString::number(valueAt(l, k), 'g', 17), kept ? QStringLiteral("1") : QStringLiteral("0")});
        }
    return t;
}

}  // namespace mlawb::gui
