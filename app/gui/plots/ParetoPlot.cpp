#include "app/gui/plots/ParetoPlot.h"

#include <algorithm>
#include <cmath>

namespace mlawb::gui {

namespace {

const QColor kFrontColour(214, 39, 40);
const QColor kOtherColour(120, 120, 120);
const QColor kBaselineColour(31, 119, 180);

QString bytesText(double bytes) {
    return bytes == std::floor(bytes) ? QString::number(static_cast<qlonglong>(bytes)) : QString::number(bytes, 'f', 2);
}

}  // namespace

ParetoPlot::ParetoPlot(QWidget* parent) : QCustomPlot(parent) {
    setMinimumSize(480, 320);
    xAxis->setLabel(tr("KV cache bytes per token (all layers, nominal)"));
    yAxis->setLabel(tr("score"));
    legend->setVisible(true);
    legend->setFont(QFont(font().family(), 8));
    axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);

    others_ = addGraph();
    others_->setName(tr("setting"));
    others_->setLineStyle(QCPGraph::lsNone);
    others_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, kOtherColour, Qt::white, 8));
    front_ = addGraph();
    front_->setName(tr("Pareto front"));
    front_->setPen(QPen(kFrontColour, 1.6));
    front_->setLineStyle(QCPGraph::lsStepLeft);  // attainable: the best score at or below x bytes
    front_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, kFrontColour, kFrontColour, 9));
    baselinePoint_ = addGraph();
    baselinePoint_->setName(tr("original model"));
    baselinePoint_->setLineStyle(QCPGraph::lsNone);
    baselinePoint_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, QPen(kBaselineColour, 2), Qt::NoBrush, 13));

    baseline_ = new QCPItemStraightLine(this);
    baseline_->setPen(QPen(kBaselineColour, 1.2, Qt::DashLine));
    baseline_->setClipToAxisRect(true);
    baselineLabel_ = new QCPItemText(this);
    baselineLabel_->setColor(kBaselineColour);
    baselineLabel_->position->setTypeX(QCPItemPosition::ptAxisRectRatio);
    baselineLabel_->position->setTypeY(QCPItemPosition::ptPlotCoords);
    baselineLabel_->setPositionAlignment(Qt::AlignLeft | Qt::AlignBottom);
    baselineLabel_->setPadding(QMargins(4, 0, 4, 2));
    connect(this, &QCustomPlot::mousePress, this, &ParetoPlot::onMousePress);
    redraw();
}

void ParetoPlot::setData(const ParetoData& data) {
    data_ = data;
    redraw();
}

void ParetoPlot::redraw() {
    for (QCPItemText* label : labels_) removeItem(label);
    labels_.clear();
    QVector<double> ox, oy, fx, fy, bx, by;
    double maxBytes = 0, maxScore = 0, minScore = 0;
    bool first = true;
    for (const ParetoPoint& p : data_.points) {  // sorted by bytes: the front line runs left to right
        (p.on_front ? fx : ox).append(p.kv_bytes_per_token);
        (p.on_front ? fy : oy).append(p.score);
        if (p.baseline) {
            bx.append(p.kv_bytes_per_token);
            by.append(p.score);
        }
        maxBytes = std::max(maxBytes, p.kv_bytes_per_token);
        maxScore = first ? p.score : std::max(maxScore, p.score);
        minScore = first ? p.score : std::min(minScore, p.score);
        first = false;
        auto* label = new QCPItemText(this);
        label->position->setCoords(p.kv_bytes_per_token, p.score);
        label->setPositionAlignment(Qt::AlignLeft | Qt::AlignBottom);
        label->setPadding(QMargins(6, 0, 0, 4));
        label->setText(QString::fromStdString(p.label));
        label->setFont(QFont(font().family(), 8));
        label->setColor(p.on_front ? kFrontColour.darker(130) : QColor(70, 70, 70));
        label->setClipToAxisRect(false);
        labels_.push_back(label);
    }
    others_->setData(ox, oy, true);
    front_->setData(fx, fy, true);
    baselinePoint_->setData(bx, by, true);

    const bool baseline = data_.baseline.has_value();
    baseline_->setVisible(baseline);
    baselineLabel_->setVisible(baseline);
    if (baseline) {
        baseline_->point1->setCoords(0.0, data_.baseline->score);
        baseline_->point2->setCoords(1.0, data_.baseline->score);
        baselineLabel_->position->setCoords(0.0, data_.baseline->score);
        baselineLabel_->setText(tr("original model: %1").arg(data_.baseline->score, 0, 'f', 2));
    }

    // Bytes from 0 (a saving reads as a distance), with room on the right for the labels.
    xAxis->setRange(0.0, maxBytes > 0 ? maxBytes * 1.3 : 1.0);
    if (data_.higher_is_better) {
        const double top = std::max(1.0, maxScore) * 1.15;
        yAxis->setRange(0.0, top);
    } else {
        const double span = std::max(1e-9, maxScore - minScore);
        yAxis->setRange(std::max(0.0, minScore - 0.2 * span), maxScore + 0.3 * span);
    }
    const QString metric = QString::fromStdString(data_.metric);
    yAxis->setLabel(metric.isEmpty() ? tr("score") : tr("%1 (%2)").arg(
        metric, data_.higher_is_better ? tr("higher is better") : tr("lower is better")));
    replot();
    layoutLabels();
}

void ParetoPlot::resizeEvent(QResizeEvent* event) {
    QCustomPlot::resizeEvent(event);
    layoutLabels();
}

void ParetoPlot::layoutLabels() {
    if (labels_.empty()) return;
    const QFontMetrics metrics(labels_.front()->font());
    const int lineHeight = metrics.height();
    std::vector<QRect> placed;
    for (size_t i = 0; i < labels_.size() && i < data_.points.size(); ++i) {
        const QPointF anchor = pointPixel(static_cast<int>(i));
        const int width = metrics.horizontalAdvance(labels_[i]->text()) + 8;
        // The lowest level (just above the point) whose box is free; points are sorted by bytes.
        int level = 0;
        QRect box;
        for (;; ++level) {
            const int bottom = static_cast<int>(anchor.y()) - 4 - level * (lineHeight + 1);
            box = QRect(static_cast<int>(anchor.x()) + 4, bottom - lineHeight, width, lineHeight);
            if (std::none_of(placed.begin(), placed.end(), [&](const QRect& r) { return r.intersects(box); }) ||
                level > static_cast<int>(labels_.size()))
                break;
        }
        placed.push_back(box);
        labels_[i]->setPadding(QMargins(6, 0, 0, 4 + level * (lineHeight + 1)));
    }
    replot(QCustomPlot::rpQueuedReplot);
}

int ParetoPlot::frontPointCount() const { return front_->dataCount(); }

bool ParetoPlot::hasBaselineLine() const { return baseline_->visible(); }

QPointF ParetoPlot::pointPixel(int index) const {
    const ParetoPoint& p = data_.points.at(static_cast<size_t>(index));
    return {xAxis->coordToPixel(p.kv_bytes_per_token), yAxis->coordToPixel(p.score)};
}

int ParetoPlot::pointAt(const QPointF& pixel) const {
    int best = -1;
    double bestDistance = kClickRadiusPx;
    for (int i = 0; i < static_cast<int>(data_.points.size()); ++i) {
        const QPointF d = pointPixel(i) - pixel;
        const double distance = std::hypot(d.x(), d.y());
        if (distance <= bestDistance) {
            best = i;
            bestDistance = distance;
        }
    }
    return best;
}

void ParetoPlot::onMousePress(QMouseEvent* event) {
    if (event->button() != Qt::LeftButton) return;
    const int index = pointAt(event->position());
    if (index >= 0) Q_EMIT pointClicked(data_.points[static_cast<size_t>(index)].run_id);
}

PlotTable ParetoPlot::table() const {
    PlotTable t;
    t.header = {QStringLiteral("run_id"), QStringLiteral("setting"), QStringLiteral("label"),
                QStringLiteral("kv_bytes_per_token"), QStringLiteral("score"), QStringLiteral("on_front"),
                QStringLiteral("baseline")};
    for (const ParetoPoint& p : data_.points)
        t.rows.push_back({QString::number(p.run_id), QString::fromStdString(p.setting), QString::fromStdString(p.label),
                          bytesText(p.kv_bytes_per_token), QString::number(p.score, 'g', 17),
                          p.on_front ? QStringLiteral("1") : QStringLiteral("0"),
                          p.baseline ? QStringLiteral("1") : QStringLiteral("0")});
    return t;
}

}  // namespace mlawb::gui
