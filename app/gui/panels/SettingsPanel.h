// SettingsPanel: choose an MLA setting (strategy, r, start, d_kv, svd, KV bits, context, batch)
// and see at once what it keeps and saves: kept pairs, KV elements and bytes per token and at the
// chosen context x batch, the reduction vs the original (nominal and real) and the per-layer
// approximation error from a precomputed spectrum. A thin view: every figure comes from
// SettingsModel; this class only reads controls and writes labels, synchronously, so one slider
// move costs one SettingsModel::evaluate plus label updates (bench_settings_latency times it).
#pragma once

#include "app/gui/SettingsModel.h"

#include <QMap>
#include <QString>
#include <QVariantMap>
#include <QWidget>

#include <optional>

class QComboBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;
class QTableWidget;

namespace mlawb::gui {

class BackgroundJob;

class SettingsPanel : public QWidget {
    Q_OBJECT

public:
    explicit SettingsPanel(QWidget* parent = nullptr);

    // A new model: resets the controls' ranges and forgets scores and spectrum.
    void setModelConfig(const mlawb::ModelConfig& config);
    // The checkpoint folder "Convert and save" converts (the config's folder).
    void setModelFolder(const QString& folder) { model_folder_ = folder; updateButtons(); }
    // 2-norm scores for the 2-norm strategies (from the RoPE heatmap tab's calibration).
    void setScores(std::optional<mlawb::RopeScores> scores);
    // A spectrum at full rank, computed for the mask of `mask_spec` (from the Spectrum tab).
    void setSpectrum(mlawb::SpectrumReport report, const mlawb::MlaSpec& mask_spec);

    // Controls, set as the user would (each change updates the figures before returning).
    void setStrategy(const QString& name);
    void setSvdMode(mlawb::SvdMode mode);
    void setKvBits(int bits);
    QSpinBox* rSpin() const { return r_spin_; }
    QSlider* rSlider() const { return r_slider_; }
    QSpinBox* startSpin() const { return start_spin_; }
    QSpinBox* dKvSpin() const { return d_kv_spin_; }
    QSlider* dKvSlider() const { return d_kv_slider_; }
    QSpinBox* contextSpin() const { return context_spin_; }
    QSpinBox* batchSpin() const { return batch_spin_; }

    // What the user sees, for tests and the benchmark.
    SettingsInput currentInput() const;
    const SettingsFigures& figures() const { return figures_; }
    QString fieldText(const QString& key) const;  // "elements_layer", "reduction", ...
    QStringList fieldKeys() const { return field_labels_.keys(); }
    QString validationText() const;                // "" when the setting is valid
    QString specText() const;                      // canonical spec string on show
    QString errorSourceText() const;
    QTableWidget* layerTable() const { return layer_table_; }
    QPushButton* convertButton() const { return convert_button_; }
    QPushButton* evaluateButton() const { return evaluate_button_; }
    int updateCount() const { return update_count_; }
    const std::optional<mlawb::RopeScores>& scores() const { return model_.scores(); }

    // Convert and save: converts the model with the setting on show and writes the MLA folder
    // `outFolder` (must not exist) in a worker; false when no model, an invalid setting, the
    // original model, or a conversion is running. The result arrives as convertFinished.
    bool startConvert(const QString& outFolder);
    void cancelConvert();
    bool isConverting() const;
    QString convertStatusText() const;

    // The controls as plain values (QSettings), and back; unknown or out-of-range values are
    // clamped by the controls. Restore after setModelConfig (which resets the controls).
    QVariantMap saveState() const;
    void restoreState(const QVariantMap& state);

Q_SIGNALS:
    void figuresUpdated();
    void convertFinished(bool ok, const QString& message);  // message: the folder, or the error
    // "Evaluate this setting": MainWindow switches to the Eval tab with `spec`.
    void evaluateRequested(const QString& spec);
    void errorReported(const QString& message);

private:
    QWidget* buildControls();
    QWidget* buildFigures();
    void addField(QFormLayout* form, const QString& key, const QString& caption);
    void setField(const QString& key, const QString& text);
    void connectSliderAndSpin(QSlider* slider, QSpinBox* spin);
    void updateControlStates();
    void refresh();
    void showFigures();
    void showLayers();
    void updateButtons();
    void chooseConvertFolder();

    SettingsModel model_;
    QString model_folder_;
    BackgroundJob* convert_job_ = nullptr;
    SettingsFigures figures_;
    int update_count_ = 0;
    bool building_ = false;  // set while setModelConfig resets controls: one refresh at the end

    QComboBox* strategy_combo_ = nullptr;
    QLabel* strategy_description_ = nullptr;
    QSlider* r_slider_ = nullptr;
    QSpinBox* r_spin_ = nullptr;
    QSpinBox* start_spin_ = nullptr;
    QSlider* d_kv_slider_ = nullptr;
    QSpinBox* d_kv_spin_ = nullptr;
    QComboBox* svd_combo_ = nullptr;
    QComboBox* kv_bits_combo_ = nullptr;
    QSpinBox* context_spin_ = nullptr;
    QSpinBox* batch_spin_ = nullptr;
    QLineEdit* spec_line_ = nullptr;
    QPushButton* convert_button_ = nullptr;
    QPushButton* evaluate_button_ = nullptr;
    QPushButton* cancel_convert_button_ = nullptr;
    QWidget* convert_row_ = nullptr;  // progress and Cancel, visible while converting
    QProgressBar* convert_progress_ = nullptr;
    QLabel* convert_status_ = nullptr;

    QLabel* validation_label_ = nullptr;  // red; shown instead of the figures
    QWidget* figures_box_ = nullptr;
    QMap<QString, QLabel*> field_labels_;
    QLabel* error_source_label_ = nullptr;
    QTableWidget* layer_table_ = nullptr;
};

}  // namespace mlawb::gui
